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
mkdir -p /run/palisade
if [ "$mode" = apply ]; then
    lock_node
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
    snap=$(mktemp -d /run/palisade/boot.XXXXXX)
fi
: >"$snap/steps"
created=''
# The rollback written for this snapshot acts on it alone: a stale timer of
# an earlier change finds another id and does nothing.
id="$$.$(date +%s)"
echo "$id" >"$snap/id"

# step CMD...: record the undo of the commit step about to run.
step() {
    if [ -d "$snap/claim" ]; then
        echo "palisade: the rollback started before the change finished" >&2
        exit 5
    fi
    { echo "$*"; cat "$snap/steps"; } >"$snap/steps.tmp"
    mv -f "$snap/steps.tmp" "$snap/steps"
}

# The rollback takes the node lock (waiting for a commit in progress to end;
# after 10 minutes it goes ahead regardless: a stuck step must not keep the
# operator locked out), then the claim, which confirm races it for. With
# `--locked OWNER`, its caller already holds the lock.
write_rollback() {
    {
        echo '#!/bin/sh'
        echo '# palisade rollback: puts back what was there before the last change.'
        echo 'set -u'
        echo 'trap "" HUP PIPE'
        echo 'PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH'
        echo 'owner=rollback'
        echo 'if [ "${1-}" = --locked ]; then owner=$2; else'
        echo '    exec 9>/run/palisade/lock'
        echo '    flock -w 600 9 || echo "palisade rollback: the node lock is still taken after 600s; rolling back anyway" >&2'
        echo 'fi'
        echo "[ \"\$(cat '$snap/id' 2>/dev/null)\" = '$id' ] || exit 0"
        echo "mkdir '$snap/claim' 2>/dev/null || exit 0"
        echo "echo \"\$owner\" >'$snap/claim/by'"
        echo ". '$snap/steps'"
        echo "ipset destroy '$set4-old' 2>/dev/null; ipset destroy '$set6-old' 2>/dev/null"
        echo ": >'$snap/rolled-back'"
    } >"$snap/rollback.sh"
}

finish() {
    rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        if [ -s "$snap/steps" ]; then
            echo "palisade: a step failed (exit $rc); putting the previous state back" >&2
        fi
        disarm "$snap"
        sh "$snap/rollback.sh" --locked "$mode-failed" || echo "palisade: could not put everything back" >&2
        for s in $created; do ipset destroy "$s" 2>/dev/null || true; done
        # Unless a rollback that could not wait for the lock owns it now.
        if [ "$(cat "$snap/claim/by" 2>/dev/null)" = "$mode-failed" ]; then rm -rf "$snap"; fi
    elif [ ! -e "$snap/armed" ]; then
        rm -rf "$snap"
    fi
    ipset destroy "$set4-new" 2>/dev/null || true
    ipset destroy "$set6-new" 2>/dev/null || true
    exit "$rc"
}
write_rollback
trap finish EXIT
trap 'exit 130' INT TERM

# jump_fix TABLE PARENT TARGET: restore lines leaving one jump, at the top.
jump_fix() {
    pos=$(positions "$1" "$2" "$3" | tr '\n' ' ')
    if [ "$pos" != "1 " ]; then
        for p in $pos; do echo "-D $2 -j $3"; done
        echo "-I $2 1 -j $3"
    fi
}

# jump_back TABLE PARENT TARGET top|none: restore lines putting the jumps back
# where they are now, once the commit has left one at the top (top) or none.
jump_back() {
    pos=$(positions "$1" "$2" "$3" | tr '\n' ' ')
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

# The families whose published ports the DOCKER-USER guard covers, as the
# confirmed change recorded them: at boot, before Docker has made its
# DOCKER-USER chain, the restore makes it (Docker keeps an existing one) and
# puts the guard in.
docker_families=''
guarded() {
    case " $(cat "${restore_path%/*}/docker-user" 2>/dev/null) " in *" $1 "*) return 0 ;; esac
    return 1
}

prepare() {
    v=$1 ipt=$2 fam=$3 set=$4
    if ipset list -n "$set" >/dev/null 2>&1; then
        ipset save "$set" >"$snap/set.$v"
    else
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

    table=$("$ipt" -w 20 -S)
    docker=none
    make_docker_user=0
    if [ "$docker_user" = 1 ] && has_chain "$table" DOCKER-USER; then
        docker=guard
    elif [ "$docker_user" = 1 ] && [ "$mode" = boot ] && guarded "$v"; then
        docker=guard
        make_docker_user=1
    elif has_chain "$table" "$dchain"; then
        docker=drop
    fi
    if [ "$docker" = guard ]; then docker_families="$docker_families $v"; fi
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
                    for p in $(positions "$table" DOCKER-USER "$dchain"); do echo "-D DOCKER-USER -j $dchain"; done
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

# set_back V SET: the undo of swapping SET.
set_back() {
    if [ -f "$snap/set.$1" ]; then
        echo "ipset destroy '$2-old' 2>/dev/null; sed -e 's/^create $2 /create $2-old /' -e 's/^add $2 /add $2-old /' '$snap/set.$1' | ipset restore && ipset swap '$2-old' '$2'"
    else
        echo "ipset destroy '$2'"
    fi
}

prepare v4 iptables inet "$set4"
prepare v6 ip6tables inet6 "$set6"

if [ "$mode" = apply ] && [ "$confirm" -gt 0 ]; then
    # Armed before the first change: from here on, the node goes back by
    # itself unless the controller confirms in time.
    date -d "@$(($(date +%s) + confirm))" '+%Y-%m-%dT%H:%M:%S%z' >"$snap/deadline" 2>/dev/null ||
        echo "in ${confirm}s" >"$snap/deadline"
    if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
        systemctl stop palisade-rollback.timer palisade-rollback.service >/dev/null 2>&1 || true
        systemctl reset-failed palisade-rollback.timer palisade-rollback.service >/dev/null 2>&1 || true
        systemd-run --quiet --unit=palisade-rollback --on-active="${confirm}s" \
            --timer-property=AccuracySec=100ms /bin/sh "$snap/rollback.sh"
        echo systemd >"$snap/armed"
    else
        setsid sh -c 'echo $$ >"$1/pid"; sleep "$2"; exec sh "$1/rollback.sh"' palisade-rollback "$snap" "$confirm" \
            </dev/null >/dev/null 2>&1 9>&- &
        i=0
        while [ ! -s "$snap/pid" ] && [ "$i" -lt 250 ]; do sleep 0.02; i=$((i + 1)); done
        echo setsid >"$snap/armed"
    fi
fi

step "$(set_back v4 "$set4")"
ipset swap "$set4-new" "$set4"
step "$(set_back v6 "$set6")"
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
        if [ -n "$docker_families" ]; then echo $docker_families >"$snap/boot/docker-user"; fi
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
    if [ ! -e "$snap/armed" ]; then
        # Nothing to confirm (no rollback armed): the change stands now.
        install_boot "$snap"
    fi
fi
if [ -e "$snap/armed" ]; then
    echo "armed=$(cat "$snap/armed")" || true
fi
echo 'palisade: applied' || true
