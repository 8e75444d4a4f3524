from wazuh_ecr_scan.cli import main

raise SystemExit(main())
