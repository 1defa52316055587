# --backend auto: loaded after the library (lib.sh) when each node picks
# its backend itself; with --backend iptables or nftables no node runs it.

# choose: (--backend auto) pick this node's backend: nftables where
# palisade's table is there, or where nft takes a table of the kinds
# palisade makes (`nft -c`, which changes nothing); else iptables. Sets fw
# and fw_why; for nftables loads its read side (nft_lib, nft.sh), and keeps
# the table read (see read_node there). In the converge script (which has
# lib_text), also makes lib_text the chosen backend's: what the rollback
# and the boot restore are made of, as with --backend (the change brings
# that backend's header, render::change_code).
choose() {
    fw=ipt fw_why='nft is not installed'
    if command -v nft >/dev/null 2>&1; then
        if ntable_json=$(nft -j list table inet "$ntable" 2>/dev/null); then
            fw=nft fw_why="palisade's table is there"
        elif printf 'table inet %s {\nset s { type ipv4_addr; flags interval; }\nchain c { type filter hook prerouting priority -150; policy accept; }\n}\n' "$ntable" |
            nft -c -f - >/dev/null 2>&1; then
            fw=nft fw_why='nft takes the table' ntable_json=''
        else
            fw_why='nft refused a table (nft -c)'
        fi
    fi
    # What observe says of it, framed as `section` and `say` frame.
    choice="==> backend-choice$nl|$fw $fw_why$nl"
    if [ "$fw" = nft ]; then
        eval "$nft_lib"
        read_once=1
        if [ -n "${lib_text-}" ]; then lib_text=$lib_text$nft_lib; fi
    fi
}
