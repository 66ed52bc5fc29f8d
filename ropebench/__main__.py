from ropebench.cli.main import main

raise SystemExit(main())
