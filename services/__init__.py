"""The onexen service processes: `services.<name>.main:main` for each console script."""
