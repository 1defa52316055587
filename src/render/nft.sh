# The nftables backend's read side, loaded after the library (lib.sh) in
# its place: palisade's objects are one table, `inet $ntable`, read with one
# `nft -j list table` (JSON, one line, which the controller parses) and
# made or replaced whole by one `nft -f` (nft-apply.sh). Another table is
# never read nor touched.
tools='nft'

# read_node: sets ntable_json to the table as `nft -j list table` prints
# it, empty when there is none: one process. Also what the iptables backend
# left, when palisade's sets are there (it makes them with its chains and
# takes them away last): ipt_left is then 1, and read_ipt has read its
# tables and sets, which a change takes away once the table is in. One
# process more where ipset is installed and its kernel module loaded
# (/sys/module/ip_set, there when it is built in too, as it has a
# parameter): without it, no set can exist.
read_node() {
    # choose (--backend auto) has just read the table: once.
    if [ "${read_once-0}" = 1 ]; then
        read_once=0
    else
        ntable_json=$(nft -j list table inet "$ntable" 2>/dev/null) || ntable_json=""
    fi
    ipt_left=0
    table_v4="" table_v6="" mangle_v4="" mangle_v6="" save_v4="" save_v6="" audit_v4="" audit_v6=""
    if { [ ! -d /sys/module ] || [ -d /sys/module/ip_set ]; } && command -v ipset >/dev/null 2>&1; then
        ipt_sets=$(ipset list -n 2>/dev/null) || ipt_sets=""
        case "$nl$ipt_sets$nl" in
            *"$nl$set4$nl"* | *"$nl$set6$nl"*)
                ipt_left=1
                read_ipt
                ;;
        esac
    fi
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

# say_back: the section `nft`: the table's name, then its JSON; and what
# the iptables backend left, if anything (say_ipt).
say_back() {
    section nft
    say "$ntable"
    if [ -n "$ntable_json" ]; then say "$ntable_json"; fi
    if [ "$ipt_left" = 1 ]; then say_ipt; fi
}
