from migrate_wrapper.cli import entry

entry()
