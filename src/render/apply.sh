# palisade apply: atomic and idempotent.
#
# Prepare (no effect on traffic): create the live sets if missing, fill
# SET-new aside, write the rules file (our chain, the jump at INPUT 1, the
# DOCKER-USER guard) and check it with iptables-restore --test, and write what
# would put today's chains and jumps back.
# Commit: swap the sets, replace the chains with iptables-restore --noflush
# (only our chains; every other rule stays), write persistence. Each commit
# step records its undo; if any later step fails, the EXIT trap replays them,
# so a node ends either in its old state or in the new one.
umask 077
mkdir -p /run/palisade
work=$(mktemp -d /run/palisade/apply.XXXXXX)
undo=''
created=''

finish() {
    rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ] && [ -n "$undo" ]; then
        echo "palisade: a step failed (exit $rc); putting the previous state back" >&2
        eval "$undo" || echo "palisade: could not put everything back" >&2
    fi
    ipset destroy "$set4-new" 2>/dev/null || true
    ipset destroy "$set6-new" 2>/dev/null || true
    if [ "$rc" -ne 0 ]; then
        for s in $created; do ipset destroy "$s" 2>/dev/null || true; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

# jump_fix IPT PARENT TARGET: restore lines leaving one jump, at the top.
jump_fix() {
    pos=$(positions "$1" "$2" "$3" | tr '\n' ' ')
    if [ "$pos" != "1 " ]; then
        for p in $pos; do echo "-D $2 -j $3"; done
        echo "-I $2 1 -j $3"
    fi
}

# jump_back IPT PARENT TARGET top|none: restore lines putting the jumps back
# where they are now, once the commit has left one at the top (top) or none.
jump_back() {
    pos=$(positions "$1" "$2" "$3" | tr '\n' ' ')
    if [ "$4" = top ] && [ "$pos" = "1 " ]; then
        return 0
    fi
    if [ "$4" = top ]; then echo "-D $2 -j $3"; fi
    for p in $pos; do echo "-I $2 $p -j $3"; done
}

# chain_now IPT CHAIN: restore lines recreating the chain as it is now.
chain_now() {
    echo ":$2 - [0:0]"
    "$1" -w -S "$2" | grep -v -x -F -e "-N $2"
}

prepare() {
    v=$1 ipt=$2 fam=$3 set=$4
    if ! ipset list -n "$set" >/dev/null 2>&1; then
        ipset create "$set" hash:net family "$fam" maxelem 65536
        created="$created $set"
    fi
    case "$(ipset list -t "$set")" in
        *"Type: hash:net"*"Header: family $fam "*) ;;
        *)
            echo "palisade: set $set exists but is not hash:net family $fam; remove it first" >&2
            exit 3
            ;;
    esac
    ipset destroy "$set-new" 2>/dev/null || true
    ipset create "$set-new" hash:net family "$fam" maxelem 65536
    "members_$v" | sed "s/^/add $set-new /" | ipset restore

    docker=none
    if [ "$docker_user" = 1 ] && has_chain "$ipt" DOCKER-USER; then
        docker=guard
    elif has_chain "$ipt" "$dchain"; then
        docker=drop
    fi
    had_chain=0
    if has_chain "$ipt" "$chain"; then had_chain=1; fi
    had_dchain=0
    if has_chain "$ipt" "$dchain"; then had_dchain=1; fi

    {
        echo '*filter'
        echo ":$chain - [0:0]"
        "rules_$v"
        jump_fix "$ipt" INPUT "$chain"
        case $docker in
            guard)
                echo ":$dchain - [0:0]"
                "docker_rules_$v"
                jump_fix "$ipt" DOCKER-USER "$dchain"
                ;;
            drop)
                if has_chain "$ipt" DOCKER-USER; then
                    for p in $(positions "$ipt" DOCKER-USER "$dchain"); do echo "-D DOCKER-USER -j $dchain"; done
                fi
                echo "-F $dchain"
                echo "-X $dchain"
                ;;
        esac
        echo COMMIT
    } >"$work/rules.$v"

    {
        echo '*filter'
        if [ "$had_chain" = 1 ]; then chain_now "$ipt" "$chain"; fi
        if [ "$had_dchain" = 1 ]; then chain_now "$ipt" "$dchain"; fi
        jump_back "$ipt" INPUT "$chain" top
        case $docker in
            guard) jump_back "$ipt" DOCKER-USER "$dchain" top ;;
            drop) if has_chain "$ipt" DOCKER-USER; then jump_back "$ipt" DOCKER-USER "$dchain" none; fi ;;
        esac
        if [ "$had_chain" = 0 ]; then echo "-F $chain" && echo "-X $chain"; fi
        if [ "$had_dchain" = 0 ] && [ "$docker" = guard ]; then echo "-F $dchain" && echo "-X $dchain"; fi
        echo COMMIT
    } >"$work/undo.$v"

    "$ipt-restore" -w --noflush --test <"$work/rules.$v"
}

put_back_files() {
    for f in "$restore_path" "${restore_path%/*}/backend"; do
        name=${f##*/}
        if [ -f "$work/old.$name" ]; then mv -f "$work/old.$name" "$f"; else rm -f "$f"; fi
    done
}

prepare v4 iptables inet "$set4"
prepare v6 ip6tables inet6 "$set6"

ipset swap "$set4-new" "$set4"
undo="ipset swap $set4-new $set4; $undo"
ipset swap "$set6-new" "$set6"
undo="ipset swap $set6-new $set6; $undo"
iptables-restore -w --noflush <"$work/rules.v4"
undo="iptables-restore -w --noflush <$work/undo.v4; $undo"
ip6tables-restore -w --noflush <"$work/rules.v6"
undo="ip6tables-restore -w --noflush <$work/undo.v6; $undo"

if [ "$persist" = 1 ]; then
    dir=${restore_path%/*}
    mkdir -p "$dir"
    for f in "$restore_path" "$dir/backend"; do
        if [ -f "$f" ]; then cp -p "$f" "$work/old.${f##*/}"; fi
    done
    undo="put_back_files; $undo"
    restore_script >"$restore_path.tmp"
    mv -f "$restore_path.tmp" "$restore_path"
    iptables -V >"$dir/backend.tmp"
    mv -f "$dir/backend.tmp" "$dir/backend"
    if [ -d /run/systemd/system ]; then
        umask 022
        unit_file >"$unit_path.tmp"
        mv -f "$unit_path.tmp" "$unit_path"
        systemctl daemon-reload
        systemctl enable "${unit_path##*/}" >/dev/null 2>&1
        echo 'persist=systemd'
    else
        echo 'persist=files'
    fi
fi
echo 'palisade: applied'
