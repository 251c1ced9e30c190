"""Training the emotion model (torch, CPU): `python -m engines.training.train`, then `.export`."""
