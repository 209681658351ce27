"""Command-line fronts: each module adds its subcommand with `add_parser(subparsers)`."""
