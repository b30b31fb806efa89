from freeze_tui.cli import main

main()
