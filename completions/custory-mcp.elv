set edit:completion:arg-completer[custory-mcp] = { |@words|
    var index = (count $words)
    set index = (- $index 1)

    put (env _CLAP_IFS="\n" _CLAP_COMPLETE_INDEX=(to-string $index) CUSTORY_COMPLETE="elvish" custory-mcp -- $@words) | to-lines
}
