# palisade apply: atomic, idempotent, and rolled back unless confirmed.
#
# Prepare (no effect on traffic): create the live sets if missing, fill
# SET-new aside, write the rules file (our chain, the jump at INPUT 1, the
# DOCKER-USER guard) and check it with iptables-restore --test.
# Arm (apply mode): a rollback that puts today's state back after $confirm
# seconds, by systemd-run or a detached sleeper; the controller disarms it
# once a new connection from it still gets through.
# Commit: swap the sets, replace our chains with iptables-restore --noflush
# (every other rule stays). Each commit step first records its undo in the
# rollback's steps; if a later step fails, the rollback runs at once, so a
# node ends either in its old state or in the new one.
# Stage: the boot files this change wants go to the snapshot in /run, never
# to disk: the confirmation installs them (install_boot), so a node that
# crashes before it boots into the old state.
umask 077
# A dropped SSH connection must not stop this script half-way: it finishes,
# and the armed rollback undoes it unless the controller confirms.
trap '' HUP PIPE
[ -d /run/palisade ] || mkdir -p /run/palisade
if [ "$mode" = apply ]; then
    lock_node
    settle
    snap=/run/palisade/rollback
    if [ -d "$snap" ]; then
        if [ -e "$snap/rolled-back" ] || [ ! -e "$snap/armed" ]; then
            rm -rf "$snap"
        else
            echo "palisade: an earlier change on this node is not confirmed and rolls back by itself at $(cat "$snap/deadline" 2>/dev/null); try again after that" >&2
            exit 4
        fi
    fi
    mkdir "$snap"
else
    # At boot, after a manual `systemctl restart palisade` too: one at a time.
    lock_node 60
    snap=$(mktemp -d /run/palisade/boot.XXXXXX)
fi
: >"$snap/steps"
created=''
# The rollback acts for this change alone: its trigger passes this id, and
# a stale trigger of an earlier change (whose rollback.sh, at the same path,
# is now this one) passes another and does nothing.
id="$$-$(date +%s)"
echo "$id" >"$snap/id"

# step CMD...: record the undo of the commit step about to run, first in
# the list (kept in $steps too, so no `cat` reads it back), replacing the
# file by a rename: the rollback never reads half a list.
steps=''
step() {
    if [ -d "$snap/claim" ]; then
        echo "palisade: the rollback started before the change finished" >&2
        exit 5
    fi
    steps="$*$nl$steps"
    printf '%s' "$steps" >"$snap/steps.tmp"
    mv -f "$snap/steps.tmp" "$snap/steps"
}

# rollback.sh ID [--locked OWNER [resume]]: takes the node lock (waiting for
# a commit in progress to end; after 10 minutes it goes ahead regardless: a
# stuck step must not keep the operator locked out), then the claim, which
# confirm races it for, and undoes every recorded step, retrying once what
# failed. With --locked its caller holds the lock; with resume it takes over
# a claim whose owner died.
write_rollback() {
    {
        echo '#!/bin/sh'
        echo '# palisade rollback: puts back what was there before the last change.'
        echo 'set -u'
        echo 'trap "" HUP PIPE INT TERM'
        echo 'PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH'
        echo "[ \"\${1-}\" = '$id' ] || exit 0"
        echo 'owner=rollback'
        echo 'if [ "${2-}" = --locked ]; then owner=$3; else'
        echo '    exec 9>/run/palisade/lock'
        echo '    flock -w 600 9 || echo "palisade rollback: the node lock is still taken after 600s; rolling back anyway" >&2'
        echo 'fi'
        echo "[ \"\$(cat '$snap/id' 2>/dev/null)\" = '$id' ] || exit 0"
        echo "[ ! -e '$snap/rolled-back' ] || exit 0"
        echo "mkdir '$snap/claim' 2>/dev/null || [ \"\${4-}\" = resume ] || exit 0"
        echo "echo \"\$owner\" >'$snap/claim/by'"
        echo 'undo() { bad=0; while IFS= read -r line; do eval "$line" </dev/null || bad=1; done <'"'$snap/steps'"'; }'
        echo 'undo'
        echo 'if [ "$bad" = 1 ]; then sleep 2; undo; fi'
        echo "ipset destroy '$set4-old' 2>/dev/null; ipset destroy '$set6-old' 2>/dev/null"
        echo "if [ \"\$bad\" = 1 ]; then : >'$snap/rollback-failed'; echo 'palisade rollback: some steps failed twice' >&2; fi"
        echo ": >'$snap/rolled-back'"
        echo 'exit "$bad"'
    } >"$snap/rollback.sh"
}

finish() {
    rc=$?
    set +e
    trap '' HUP PIPE INT TERM
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        if [ -s "$snap/steps" ]; then
            echo "palisade: a step failed (exit $rc); putting the previous state back" >&2
        fi
        sh "$snap/rollback.sh" "$id" --locked "$mode-failed" || echo "palisade: could not put everything back" >&2
        # Unless a rollback that could not wait for the lock owns it now.
        fetch by "$snap/claim/by"
        if [ "$by" = "$mode-failed" ]; then
            disarm "$snap"
            for s in $created; do ipset destroy "$s" 2>/dev/null; done
            rm -rf "$snap"
        fi
    elif [ ! -e "$snap/armed" ]; then
        rm -rf "$snap"
    fi
    ipset destroy "$set4-new" 2>/dev/null
    ipset destroy "$set6-new" 2>/dev/null
    exit "$rc"
}
write_rollback
trap finish EXIT
trap 'exit 130' INT TERM

# jump_fix TABLE PARENT TARGET: restore lines leaving one jump, at the top.
jump_fix() {
    positions "$1" "$2" "$3"
    if [ "$pos" != "1 " ]; then
        for p in $pos; do echo "-D $2 -j $3"; done
        echo "-I $2 1 -j $3"
    fi
}

# jump_back TABLE PARENT TARGET top|none: restore lines putting the jumps back
# where they are now, once the commit has left one at the top (top) or none.
jump_back() {
    positions "$1" "$2" "$3"
    if [ "$4" = top ] && [ "$pos" = "1 " ]; then
        return 0
    fi
    if [ "$4" = top ]; then echo "-D $2 -j $3"; fi
    for p in $pos; do echo "-I $2 $p -j $3"; done
}

# chain_now TABLE CHAIN: restore lines recreating the chain as it is now.
chain_now() {
    echo ":$2 - [0:0]"
    chain_rules "$1" "$2"
}

# At boot Docker has not made its DOCKER-USER chain yet; where Docker is
# installed the restore makes it (Docker keeps an existing one) and puts the
# guard in, so published ports are guarded from the moment they exist.
docker_installed() {
    command -v dockerd >/dev/null 2>&1
}

prepare() {
    v=$1 ipt=$2 fam=$3 set=$4
    table=$("$ipt" -w 20 -S)
    header=$(ipset list -t "$set" 2>/dev/null || true)
    check_owned "$set" "$table" "$header"
    if [ -n "$header" ]; then
        case $header in
            *"Type: hash:net"*"Header: family $fam "*) ;;
            *)
                echo "palisade: set $set exists but is not hash:net family $fam; remove it first" >&2
                exit 3
                ;;
        esac
        ipset save "$set" >"$snap/set.$v"
    else
        ipset create "$set" hash:net family "$fam" maxelem 65536 comment
        created="$created $set"
    fi
    ipset destroy "$set-new" 2>/dev/null || true
    # SET-new made and filled by one ipset process.
    "fill_$v"

    docker=none
    make_docker_user=0
    if [ "$docker_user" = 1 ] && has_chain "$table" DOCKER-USER; then
        docker=guard
    elif [ "$docker_user" = 1 ] && [ "$mode" = boot ] && docker_installed; then
        docker=guard
        make_docker_user=1
    elif has_chain "$table" "$dchain"; then
        docker=drop
    fi
    had_chain=0
    if has_chain "$table" "$chain"; then had_chain=1; fi
    had_dchain=0
    if has_chain "$table" "$dchain"; then had_dchain=1; fi

    {
        echo '*filter'
        echo ":$chain - [0:0]"
        "rules_$v"
        jump_fix "$table" INPUT "$chain"
        case $docker in
            guard)
                if [ "$make_docker_user" = 1 ]; then echo ':DOCKER-USER - [0:0]'; fi
                echo ":$dchain - [0:0]"
                "docker_rules_$v"
                jump_fix "$table" DOCKER-USER "$dchain"
                ;;
            drop)
                if has_chain "$table" DOCKER-USER; then
                    positions "$table" DOCKER-USER "$dchain"
                    for p in $pos; do echo "-D DOCKER-USER -j $dchain"; done
                fi
                echo "-F $dchain"
                echo "-X $dchain"
                ;;
        esac
        echo COMMIT
    } >"$snap/rules.$v"

    {
        echo '*filter'
        if [ "$had_chain" = 1 ]; then chain_now "$table" "$chain"; fi
        if [ "$had_dchain" = 1 ]; then chain_now "$table" "$dchain"; fi
        jump_back "$table" INPUT "$chain" top
        case $docker in
            guard) jump_back "$table" DOCKER-USER "$dchain" top ;;
            drop) if has_chain "$table" DOCKER-USER; then jump_back "$table" DOCKER-USER "$dchain" none; fi ;;
        esac
        if [ "$had_chain" = 0 ]; then echo "-F $chain" && echo "-X $chain"; fi
        if [ "$had_dchain" = 0 ] && [ "$docker" = guard ]; then echo "-F $dchain" && echo "-X $dchain"; fi
        if [ "$make_docker_user" = 1 ]; then echo '-F DOCKER-USER' && echo '-X DOCKER-USER'; fi
        echo COMMIT
    } >"$snap/undo.$v"

    "$ipt-restore" -w 20 --noflush --test <"$snap/rules.$v"
}

# set_back V SET: sets back to the undo of swapping SET.
set_back() {
    if [ -f "$snap/set.$1" ]; then
        back="ipset destroy '$2-old' 2>/dev/null; sed -e 's/^create $2 /create $2-old /' -e 's/^add $2 /add $2-old /' '$snap/set.$1' | ipset restore && ipset swap '$2-old' '$2'"
    else
        back="ipset destroy '$2'"
    fi
}

prepare v4 iptables inet "$set4"
prepare v6 ip6tables inet6 "$set6"

if [ "$mode" = apply ] && [ "$confirm" -gt 0 ]; then
    # Armed before the first change: from here on, the node goes back by
    # itself unless the controller confirms in time.
    now=$(date +%s)
    echo "$((now + confirm))" >"$snap/deadline-epoch"
    date -d "@$((now + confirm))" '+%Y-%m-%dT%H:%M:%S%z' >"$snap/deadline" 2>/dev/null ||
        echo "in ${confirm}s" >"$snap/deadline"
    # `armed` is written before the trigger starts: a trigger never runs
    # for a snapshot that does not say how to disarm it.
    if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
        unit="palisade-rollback-$id"
        echo "systemd $unit" >"$snap/armed"
        systemd-run --quiet --unit="$unit" --on-active="${confirm}s" \
            --timer-property=AccuracySec=100ms /bin/sh "$snap/rollback.sh" "$id"
    else
        echo setsid >"$snap/armed"
        # setsid does not fork here (a background job is no group leader):
        # $! is the new process group.
        setsid sh -c 'sleep "$2"; exec sh "$1/rollback.sh" "$3"' palisade-rollback "$snap" "$confirm" "$id" \
            </dev/null >/dev/null 2>&1 9>&- &
        echo "$!" >"$snap/pid"
    fi
fi

set_back v4 "$set4"
step "$back"
ipset swap "$set4-new" "$set4"
set_back v6 "$set6"
step "$back"
ipset swap "$set6-new" "$set6"
step "iptables-restore -w 20 --noflush <'$snap/undo.v4'"
iptables-restore -w 20 --noflush <"$snap/rules.v4"
step "ip6tables-restore -w 20 --noflush <'$snap/undo.v6'"
ip6tables-restore -w 20 --noflush <"$snap/rules.v6"

if [ "$mode" = apply ]; then
    mkdir "$snap/boot"
    if [ "$persist" = 1 ]; then
        restore_script >"$snap/boot/restore.sh"
        iptables -V >"$snap/boot/backend"
        if [ -d /run/systemd/system ]; then
            unit_file >"$snap/boot/unit"
            echo 'persist=systemd' || true
        else
            echo 'persist=files' || true
        fi
        echo install >"$snap/boot/plan"
    else
        # No persistence wanted: boot files from an earlier run would restore
        # an older whitelist at the next boot; the confirmation takes them away.
        echo remove >"$snap/boot/plan"
    fi
fi
if [ -e "$snap/armed" ]; then
    fetch armed "$snap/armed"
    echo "armed=$armed" || true
fi
echo 'palisade: applied' || true
