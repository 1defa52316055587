# palisade change: atomic, idempotent, and rolled back unless confirmed.
# `change` makes it, from the tables and sets read_node (or observe) left in
# table_v4, table_v6, save_v4 and save_v6, with the node lock held.
#
# Prepare (no effect on traffic): check that the sets and chains it would
# replace are palisade's, and write the rules (our chain, the jump at INPUT 1,
# the DOCKER-USER guard: in apply mode as the controller rendered them, at
# boot as boot_rules decides) and their undo, with builtins.
# Arm (apply mode): a rollback that puts today's state back after $confirm
# seconds, by systemd-run or a detached sleeper; the controller confirms
# once a new connection from it still gets through.
# Commit: one `ipset restore` makes, fills and swaps both sets; one
# `iptables-restore --noflush` per family replaces our chains (every other
# rule stays; each is all-or-nothing for its table). Each commit step first
# records its undo for the rollback; if a later step fails, the rollback
# runs at once, so a node ends either in its old state or in the new one.
# Stage: the boot files this change wants are written beside the live ones
# (NAME.new), where nothing reads them at boot; the confirmation renames
# them in place (install_boot), so a node that crashes before it boots into
# the old state.

# step N CMD...: record the undo of commit step N, which is about to run, in
# a file of its own, written by one write(2) before the step starts: the
# rollback undoes every recorded step, the last first.
step() {
    if [ -e "$snap/claim" ]; then
        echo "palisade: the rollback started before the change finished" >&2
        exit 5
    fi
    n=$1
    shift
    printf '%s\n' "$*" >"$snap/step.$n"
}

# rollback.sh ID [--locked OWNER [resume]]: takes the node lock (waiting for
# a commit in progress to end; after 10 minutes it goes ahead regardless: a
# stuck step must not keep the operator locked out), then the claim, which
# confirm races it for, and undoes every recorded step, the last first,
# retrying once what failed. With --locked its caller holds the lock; with
# resume it takes over a claim whose owner died.
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
        echo "[ -f '$snap/id' ] && read -r now_id <'$snap/id' && [ \"\$now_id\" = '$id' ] || exit 0"
        echo "[ ! -e '$snap/rolled-back' ] || exit 0"
        echo "if [ \"\${4-}\" != resume ]; then"
        echo "    set -C"
        echo "    { echo \"\$owner\" >'$snap/claim'; } 2>/dev/null || exit 0"
        echo "    set +C"
        echo "fi"
        echo "uptime() { read -r now rest </proc/uptime; now=\${now%%.*}; }"
        echo "bump() { uptime; { echo \"\$\$-\$now-rollback\" >/run/palisade/generation; } 2>/dev/null || :; }"
        echo "bump"
        echo "undo() {"
        echo "    bad=0"
        echo "    for n in 3 2 1; do"
        echo "        [ -f '$snap/step.'\$n ] || continue"
        echo "        IFS= read -r line <'$snap/step.'\$n || continue"
        echo "        eval \"\$line\" </dev/null || bad=1"
        echo "    done"
        echo "}"
        echo 'undo'
        echo 'if [ "$bad" = 1 ]; then sleep 2; undo; fi'
        echo "for s in '$set4-old' '$set6-old'; do ipset -exist create \"\$s\" hash:net maxelem 65536 comment 2>/dev/null && ipset destroy \"\$s\" 2>/dev/null; done"
        if [ "$mode" = apply ]; then
            echo "rm -f '${restore_path%/*}/restore.sh.new' '${restore_path%/*}/backend.new' '$unit_path.new'"
        fi
        echo "if [ \"\$bad\" = 1 ]; then : >'$snap/rollback-failed'; echo 'palisade rollback: some steps failed twice' >&2; fi"
        echo ": >'$snap/rolled-back'"
        echo "bump"
        echo 'exit "$bad"'
    } >"$snap/rollback.sh"
}

# A step failed: put the previous state back at once, unless a rollback
# that could not wait for the lock owns the snapshot now, and drop the
# temporary sets.
finish() {
    rc=$?
    set +e
    trap '' HUP PIPE INT TERM
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        # Another tool's set of a temporary set's name stopped the commit's
        # `ipset restore` at its first lines, before it changed anything
        # (see drop_temp): there is nothing to undo. Ours are dropped.
        foreign=''
        for s in "$set4-new" "$set6-new" "$set4-old" "$set6-old"; do
            drop_temp "$s" || foreign="$foreign $s"
        done
        if [ -n "$foreign" ] && [ -e "$snap/step.1" ] && [ ! -e "$snap/step.2" ]; then
            echo "palisade: another tool's ipset has a name palisade uses for a temporary set of its own:$foreign; palisade will not touch it: remove it, or choose other names (--set4, --set6); nothing was changed" >&2
            rm -f "$snap/step.1"
        fi
        if [ -e "$snap/step.1" ]; then
            echo "palisade: a step failed (exit $rc); putting the previous state back" >&2
        fi
        sh "$snap/rollback.sh" "$id" --locked "$mode-failed" || echo "palisade: could not put everything back" >&2
        fetch by "$snap/claim"
        if [ "$by" = "$mode-failed" ]; then
            disarm "$snap"
            rm -rf "$snap"
        fi
    fi
    exit "$rc"
}

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

# boot_rules: at boot, with no controller, decide here what apply has the
# controller decide (render::fix, from the same facts): where the jumps go,
# and the Docker guard's fate; and write the family's rules to SNAP/rules.V.
# Reads and sets prepare's variables.
boot_rules() {
    docker=none
    if [ "$docker_user" = 1 ] && has_chain "$table" DOCKER-USER; then
        docker=guard
    elif [ "$docker_user" = 1 ] && docker_installed; then
        docker=guard
        make_docker_user=1
    elif has_chain "$table" "$dchain"; then
        docker=drop
    fi
    {
        echo '*filter'
        echo ":$chain - [0:0]"
        if [ "$v" = v4 ]; then rules=$rules_v4; else rules=$rules_v6; fi
        printf '%s' "$rules"
        jump_fix "$table" INPUT "$chain"
        case $docker in
            guard)
                if [ "$make_docker_user" = 1 ]; then echo ':DOCKER-USER - [0:0]'; fi
                echo ":$dchain - [0:0]"
                if [ "$v" = v4 ]; then rules=$docker_rules_v4; else rules=$docker_rules_v6; fi
                printf '%s' "$rules"
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
}

# prepare V FAM SET TABLE SAVE: check what is there, and write the family's
# rules and their undo to SNAP/rules.V and SNAP/undo.V, and the set's lines
# for the one `ipset restore` to $sets.
prepare() {
    v=$1 fam=$2 set=$3 table=$4 save=$5
    check_owned "$set" "$table" "$save"
    if [ -n "$save" ]; then
        case ${save%%"$nl"*} in
            "create $set hash:net family $fam "*) ;;
            *)
                echo "palisade: set $set exists but is not hash:net family $fam; remove it first" >&2
                exit 3
                ;;
        esac
        printf '%s\n' "$save" >"$snap/set.$v"
        # Into SET-old, made as SET was (its hash seed too, so that it lists
        # its members as before), emptied, filled and swapped in. With
        # -exist, an SET-old of another tool's stops the restore at its
        # first line (see drop_temp).
        undo_sets="$undo_sets{ { sed -n '1s/^create $set /create $set-old /p' '$snap/set.$v'; echo 'flush $set-old'; sed -n 's/^add $set /add $set-old /p' '$snap/set.$v'; } | ipset -exist restore && ipset swap '$set-old' '$set'; } || u=1; "
    fi
    # The temporary sets first, before every other line of the one `ipset
    # restore`, so that it stops before any change when another tool has a
    # set of such a name (see drop_temp): SET-new, made (a stale one from a
    # killed run is emptied below), and SET-old, made and dropped, so that
    # the rollback can make it.
    sets="create $set-new hash:net family $fam maxelem 65536 comment${nl}create $set-old hash:net family $fam maxelem 65536 comment$nl${sets}destroy $set-old$nl"
    if [ -z "$save" ]; then
        sets="${sets}create $set hash:net family $fam maxelem 65536 comment$nl"
        undo_sets="$undo_sets{ ipset destroy '$set' 2>/dev/null || ! ipset list -n '$set' >/dev/null 2>&1; } || u=1; "
    fi
    # SET-new filled, swapped in and dropped, by the same `ipset restore`.
    if [ "$v" = v4 ]; then members=$members_v4; else members=$members_v6; fi
    sets="${sets}flush $set-new$nl$members"
    sets="${sets}swap $set-new $set${nl}destroy $set-new$nl"

    make_docker_user=0
    if [ "$mode" = apply ]; then
        # Decided by the controller from these very tables (render::fix):
        # the rules, the jumps and the Docker guard's fate, as plan reported
        # them.
        if [ "$v" = v4 ]; then docker=$docker_v4; else docker=$docker_v6; fi
        if [ "$v" = v4 ]; then rules=$forward_v4; else rules=$forward_v6; fi
        printf '%s' "$rules" >"$snap/rules.$v"
    else
        boot_rules
    fi
    had_chain=0
    if has_chain "$table" "$chain"; then had_chain=1; fi
    had_dchain=0
    if has_chain "$table" "$dchain"; then had_dchain=1; fi

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
}

# stage: write the boot files this change wants beside the live ones, and
# say in SNAP/boot-plan what the confirmation does with them.
stage() {
    persisted=''
    if [ "$persist" = 1 ]; then
        dir=${restore_path%/*}
        [ -d "$dir" ] || mkdir -p "$dir"
        printf '%s%s%s%s%s%s' "$restore_head" "$header_text" "$restore_mode" "$lib_text" "$apply_text" "$restore_run" >"$dir/restore.sh.new"
        # As observe found it (the same process), or asked now.
        if [ -z "${backend-}" ]; then backend_of "$table_v4"; fi
        printf '%s\n' "$backend" >"$dir/backend.new"
        if [ -d /run/systemd/system ]; then
            [ -d "${unit_wants%/*}" ] || mkdir -p "${unit_wants%/*}"
            umask 022
            printf '%s' "$unit_text" >"$unit_path.new"
            umask 077
            persisted=systemd
        else
            persisted=files
        fi
        echo install >"$snap/boot-plan"
    else
        # No persistence wanted: boot files from an earlier run would restore
        # an older whitelist at the next boot; the confirmation takes them away.
        echo remove >"$snap/boot-plan"
    fi
}

# change: the whole change, from the tables read before. Exits non-zero,
# with the node as it was, when any step fails.
change() {
    umask 077
    # A dropped SSH connection must not stop the change half-way: it
    # finishes, and the armed rollback undoes it unless the controller
    # confirms.
    trap '' HUP PIPE
    snap=/run/palisade/rollback
    if [ "$mode" = apply ]; then
        if [ -d "$snap" ]; then
            if [ -e "$snap/rolled-back" ] || [ ! -e "$snap/armed" ]; then
                rm -rf "$snap"
            else
                echo "palisade: an earlier change on this node is not confirmed and rolls back by itself; try again after that" >&2
                exit 4
            fi
        fi
        mkdir -p "$snap"
    else
        [ -d /run/palisade ] || mkdir -p /run/palisade
        snap=$(mktemp -d /run/palisade/boot.XXXXXX)
    fi
    # The rollback acts for this change alone: its trigger passes this id,
    # and a stale trigger of an earlier change (whose rollback.sh, at the
    # same path, is now this one) passes another and does nothing.
    uptime
    id="$$-$now"
    echo "$id" >"$snap/id"
    sets='' undo_sets=''
    write_rollback
    trap finish EXIT
    trap 'exit 130' INT TERM

    prepare v4 inet "$set4" "$table_v4" "$save_v4"
    prepare v6 inet6 "$set6" "$table_v6" "$save_v6"
    if [ "$mode" = apply ]; then stage; fi

    if [ "$mode" = apply ] && [ "$confirm" -gt 0 ]; then
        # Armed before the first change: from here on, the node goes back by
        # itself unless the controller confirms in time. The deadline counts
        # on the clock of /proc/uptime.
        echo "$((now + confirm))" >"$snap/deadline-uptime"
        # `armed` is written before the trigger starts: a trigger never runs
        # for a snapshot that does not say how to disarm it.
        if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
            unit="palisade-rollback-$id"
            echo "systemd $unit" >"$snap/armed"
            systemd-run --quiet --unit="$unit" --on-active="${confirm}s" \
                --timer-property=AccuracySec=100ms /bin/sh "$snap/rollback.sh" "$id"
        else
            echo setsid >"$snap/armed"
            # setsid does not fork here (a background job is no group
            # leader): $! is the new process group.
            setsid sh -c 'sleep "$2"; exec sh "$1/rollback.sh" "$3"' palisade-rollback "$snap" "$confirm" "$id" \
                </dev/null >/dev/null 2>&1 9>&- &
            echo "$!" >"$snap/pid"
        fi
    fi

    printf '%s' "$sets" >"$snap/sets"
    bump change
    step 1 "u=0; $undo_sets[ \"\$u\" = 0 ]"
    ipset -exist restore <"$snap/sets"
    step 2 "iptables-restore -w 20 --noflush <'$snap/undo.v4'"
    iptables-restore -w 20 --noflush <"$snap/rules.v4"
    step 3 "ip6tables-restore -w 20 --noflush <'$snap/undo.v6'"
    ip6tables-restore -w 20 --noflush <"$snap/rules.v6"
    bump changed
    trap - EXIT
    trap '' INT TERM
    if [ "$mode" = boot ] || [ ! -e "$snap/armed" ]; then
        rm -rf "$snap"
    fi
}
