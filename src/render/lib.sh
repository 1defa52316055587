# palisade's shell library, shared by the apply, restore and remove scripts.
# Data (names, members, rules) come before it; it only reads them.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# positions IPT PARENT TARGET: the rule numbers of "-A PARENT -j TARGET".
positions() {
    "$1" -w -S "$2" | grep -n -x -F -e "-A $2 -j $3" | cut -d: -f1 | while read -r line; do
        echo $((line - 1))
    done
}

# has_chain IPT CHAIN
has_chain() {
    "$1" -w -S "$2" >/dev/null 2>&1
}
