"""The rules, one module per family; `registry` lists what each hook runs, `rule` declares and runs
them."""
