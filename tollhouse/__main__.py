from tollhouse.cli import main

raise SystemExit(main())
