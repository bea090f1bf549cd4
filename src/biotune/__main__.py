from biotune.cli import main

main()
