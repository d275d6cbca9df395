"""Job entry points: each module has ``main(argv) -> int``; ``jobs/<name>.py`` and ``recsys <name>`` call it."""
