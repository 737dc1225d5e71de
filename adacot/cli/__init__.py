"""The `adacot` command line. Each command group lives in its own module and imports heavy
libraries inside the command, so `adacot --help` stays fast."""
