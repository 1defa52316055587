# The nftables backend's read side, loaded after the library (lib.sh) in
# its place: palisade's objects are one table, `inet $ntable`, read with one
# `nft -j list table` (JSON, one line, which the controller parses) and
# made or replaced whole by one `nft -f` (nft-apply.sh). Another table is
# never read nor touched.
tools='nft'

# read_node: sets ntable_json to the table as `nft -j list table` prints
# it, empty when there is none. One process.
read_node() {
    ntable_json=$(nft -j list table inet "$ntable" 2>/dev/null) || ntable_json=''
}

# say_state: the section `nft` with the table's JSON, and `backend`, which
# stage records in the boot files.
say_state() {
    backend=nftables
    section backend
    say "$backend"
    say_back
}

read_back() {
    read_node
}

# say_back: the section `nft`: the table's name, then its JSON.
say_back() {
    section nft
    say "$ntable"
    if [ -n "$ntable_json" ]; then say "$ntable_json"; fi
}
