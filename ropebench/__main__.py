from ropebench.harness.cli import main

raise SystemExit(main())
