from migrate_wrapper.cli.main import entry

entry()
