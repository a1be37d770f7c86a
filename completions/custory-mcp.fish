complete --keep-order --exclusive --command custory-mcp --arguments "(CUSTORY_COMPLETE=fish custory-mcp -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
