from freeze_tui.cli.main import main

main()
