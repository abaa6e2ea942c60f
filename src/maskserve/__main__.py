from maskserve.cli import main

main()
