from migrate_wrapper.cli import main

main()
