from amml.cli.main import main

main()
