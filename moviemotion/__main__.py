"""`python -m moviemotion ...` runs the CLI (used to start workers as child processes)."""
from moviemotion.cli import main

main()
