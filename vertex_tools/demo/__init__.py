"""The demo behind ``vertex demo`` and the local HTTP stand-in it talks to."""
