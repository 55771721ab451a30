from react_agent.cli import main

raise SystemExit(main())
