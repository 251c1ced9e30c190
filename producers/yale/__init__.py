"""The Yale screening: an identity-consistent seat row from the Yale faces (script, renderer); see producers/yale_screening.py."""
