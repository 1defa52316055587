# palisade change: atomic, idempotent, and rolled back unless confirmed.
# `change` makes it, from the tables and sets read_node (or observe) left in
# table_v4, table_v6, save_v4 and save_v6, with the node lock held.
#
# Prepare (no effect on traffic): check that the sets and chains it would
# replace are palisade's, and write the rules (the guard before DNAT, its
# jump at mangle PREROUTING 1, and what an earlier version left in the
# filter table taken away: in apply mode as the controller rendered them,
# at boot as boot_rules decides) and their undo, with builtins.
# Arm (apply mode): a rollback that puts today's state back after $confirm
# seconds, by systemd-run or a detached sleeper; the controller confirms
# once a new connection from it still gets through.
# Commit: one `ipset restore` makes, fills and swaps both sets; one
# `iptables-restore --noflush` per family replaces the guard and takes the
# old chains away (every other rule stays; each is all-or-nothing for its
# table, the mangle table first). Each commit step first
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

# rollback.sh: (apply mode) this script's own code (the header, the library,
# this file) and `rollback "$@"`, so that the rollback, whenever it runs,
# rebuilds what to do from the tables as they are then, with the same
# functions as the change. At boot there is no trigger: a failed step calls
# the function itself (finish).
write_rollback() {
    [ "$mode" = apply ] || return 0
    printf '#!/bin/sh\n%s%s%s' "$header_text" "$lib_text" "$apply_text" >"$snap/rollback.sh"
    printf "mode=apply snap='%s' id='%s'\nrollback \"\$@\"\n" "$snap" "$id" >>"$snap/rollback.sh"
}

# rollback ID [--locked OWNER | --retry]: put the node back as it was before
# change ID, if that is still the pending change and no one else claimed it
# (the claim, which confirm races it for, is taken for OWNER). A rollback
# is never final until it is checked: every undo step converges on the
# saved state from the tables as they are now (so it succeeds when its
# effect is already there, and a second try after a half-done first
# finishes the work), and `rolled-back` is written only once the node reads
# back as it was; otherwise `rollback-failed`, which every later palisade
# command reports, and the rollback is tried again.
#   --locked OWNER  its caller holds the lock: one try.
#   --retry         the trigger: try, and try again (2 s, doubling to a
#                   minute) until it succeeds or the change is no longer
#                   its to undo (confirmed, removed, replaced).
#   (neither)       one try, taking the lock (an abort).
# A try waits for the lock 10 s at most (a commit step in progress ends
# well within that): a lock held longer fails the try, which never runs
# unlocked beside another writer.
rollback() {
    set +eu
    trap '' HUP PIPE INT TERM
    [ "${1-}" = "$id" ] || return 0
    case ${2-} in
        --locked) undo_once "${3-rollback}" ;;
        --retry)
            delay=2
            until try_locked; do
                fetch now_id "$snap/id"
                [ "$now_id" = "$id" ] || return 0
                sleep "$delay"
                if [ "$delay" -lt 60 ]; then delay=$((delay * 2)); fi
            done
            ;;
        *) try_locked ;;
    esac
}

# try_locked: one try of the rollback, under the node lock.
try_locked() {
    exec 9>/run/palisade/lock
    if ! flock -w 10 9; then
        exec 9>&-
        fetch now_id "$snap/id"
        if [ "$now_id" = "$id" ]; then { : >"$snap/rollback-failed"; } 2>/dev/null; fi
        echo "palisade rollback: the node lock is still taken after 10s; trying again later" >&2
        return 1
    fi
    undo_once rollback
    rc=$?
    exec 9>&-
    return "$rc"
}

# undo_once OWNER: (lock held) one try: 0 when the node is back as it was,
# or the change is not this rollback's to undo; 1 when it is not back. A
# claim another owner holds is taken over when that owner's try failed (it
# said so) or by settle (whose caller found its owner gone), never a
# confirmation's or a remove's.
undo_once() {
    fetch now_id "$snap/id"
    if [ ! -d "$snap" ] || [ "$now_id" != "$id" ] || [ -e "$snap/rolled-back" ]; then return 0; fi
    if ! claim "$snap" "$1"; then
        fetch by "$snap/claim"
        case $by in confirm | remove) return 0 ;; esac
        if [ "$by" != "$1" ] && [ "$1" != settle ] && [ ! -e "$snap/rollback-failed" ]; then return 0; fi
    fi
    bump rollback
    # The rules first (the sets cannot go while a rule uses them): every
    # recorded step, the last first.
    bad=0
    for n in 5 4 3 2 1; do
        [ -f "$snap/step.$n" ] || continue
        IFS= read -r line <"$snap/step.$n" || continue
        eval "$line" </dev/null || bad=1
    done
    if [ -f "$snap/step.1" ]; then sets_back || bad=1; fi
    if [ "$bad" = 0 ]; then
        drop_olds
        if [ "$mode" = apply ]; then
            dir=${restore_path%/*}
            rm -f "$dir/restore.sh.new" "$dir/backend.new" "$unit_path.new" || bad=1
        fi
    fi
    if [ "$bad" = 0 ]; then
        : >"$snap/rolled-back"
        rm -f "$snap/rollback-failed"
    else
        : >"$snap/rollback-failed"
        echo "palisade rollback: the node is not back as it was yet; it tries again" >&2
    fi
    bump
    return "$bad"
}

# sets_back: whether both sets are back as prepare saved them.
sets_back() {
    set_back v4 "$set4" && set_back v6 "$set6"
}

# drop_olds: drop the rollback's temporary sets (only palisade's own: see
# drop_temp).
drop_olds() {
    drop_temp "$set4-old"
    drop_temp "$set6-old"
}

# set_back V SET: whether SET has the members prepare saved (SNAP/set.V),
# or is gone when there was none.
set_back() {
    if [ -f "$snap/set.$1" ]; then
        [ "$(ipset save "$2" 2>/dev/null | sed 1d | sort)" = "$(sed 1d "$snap/set.$1" | sort)" ]
    else
        ! ipset list -n "$2" >/dev/null 2>&1
    fi
}

# undo_family V IPT: put the family's chains and jumps back as prepare found
# them (SNAP/chain.V, SNAP/dchain.V, SNAP/gchain.V, SNAP/jumps.V), from the
# filter and mangle tables as they are now; then read them again, and
# succeed only when nothing is left to do.
undo_family() {
    undo_lines "$1" "$2" || return 1
    [ -n "$lines$mlines" ] || return 0
    {
        if [ -n "$lines" ]; then printf '*filter\n%sCOMMIT\n' "$lines"; fi
        if [ -n "$mlines" ]; then printf '*mangle\n%sCOMMIT\n' "$mlines"; fi
    } | "$2-restore" -w 20 --noflush || return 1
    undo_lines "$1" "$2" || return 1
    if [ -n "$lines$mlines" ]; then
        echo "palisade rollback: the $2 chains are still not as they were" >&2
        return 1
    fi
}

# undo_lines V IPT: sets lines and mlines to the restore lines that take
# the family's filter and mangle tables, as read now, to their saved state:
# none when it is there.
undo_lines() {
    lines=''
    save_all "$2" || return 1
    cur=$tfilter mcur=$tmangle
    IFS=: read -r ipos dpos gpos <"$snap/jumps.$1" || return 1
    # The guard before DNAT, in the mangle table.
    chain_back "$mcur" "$gchain" "$snap/gchain.$1"
    put_jumps "$mcur" PREROUTING "$gchain" "$gpos"
    if [ ! -f "$snap/gchain.$1" ] && has_chain "$mcur" "$gchain"; then
        lines="$lines-F $gchain$nl-X $gchain$nl"
    fi
    mlines=$lines lines=''
    chain_back "$cur" "$chain" "$snap/chain.$1"
    chain_back "$cur" "$dchain" "$snap/dchain.$1"
    put_jumps "$cur" INPUT "$chain" "$ipos"
    if has_chain "$cur" DOCKER-USER; then put_jumps "$cur" DOCKER-USER "$dchain" "$dpos"; fi
    for c in "chain:$chain" "dchain:$dchain"; do
        if [ ! -f "$snap/${c%%:*}.$1" ] && has_chain "$cur" "${c#*:}"; then
            lines="$lines-F ${c#*:}$nl-X ${c#*:}$nl"
        fi
    done
}

# chain_back TABLE NAME SAVED: adds to lines what writes chain NAME back
# with the rules in the file SAVED, when there is such a file and TABLE's
# NAME is not that.
chain_back() {
    [ -f "$3" ] || return 0
    want=$(cat "$3")
    rules_of "$1" "$2"
    if ! has_chain "$1" "$2" || [ "${rules%"$nl"}" != "$want" ]; then
        lines="$lines:$2 - [0:0]$nl"
        if [ -n "$want" ]; then lines="$lines$want$nl"; fi
    fi
}

# put_jumps TABLE PARENT TARGET WANT: adds to lines what puts the jumps
# from PARENT to TARGET at the positions WANT (ascending, as `positions`
# gave them before the change), if they are not there. A position past the
# end of PARENT as it is now (its other rules edited since) is its end.
put_jumps() {
    positions "$1" "$2" "$3"
    others=$n
    for p in $pos; do others=$((others - 1)); done
    k=0 expect=''
    for p in $4; do
        k=$((k + 1))
        if [ "$p" -gt "$((others + k))" ]; then p=$((others + k)); fi
        expect="$expect$p "
    done
    if [ "$pos" != "$expect" ]; then
        for p in $pos; do lines="$lines-D $2 -j $3$nl"; done
        for p in $expect; do lines="$lines-I $2 $p -j $3$nl"; done
    fi
}

# failed_temps: (a step failed) drop palisade's temporary sets; when
# another tool's set of a temporary set's name stopped the commit's `ipset
# restore` at its first lines, before it changed anything (see drop_temp),
# there is nothing to undo, and the step's undo is forgotten.
failed_temps() {
    foreign=''
    for s in "$set4-new" "$set6-new" "$set4-old" "$set6-old"; do
        drop_temp "$s" || foreign="$foreign $s"
    done
    if [ -n "$foreign" ] && [ -e "$snap/step.1" ] && [ ! -e "$snap/step.2" ]; then
        echo "palisade: another tool's ipset has a name palisade uses for a temporary set of its own:$foreign; palisade will not touch it: remove it, or choose other names (--set4, --set6); nothing was changed" >&2
        rm -f "$snap/step.1"
    fi
}

# A step failed: put the previous state back at once, unless a rollback
# that could not wait for the lock owns the snapshot now, and drop the
# temporary sets. A rollback that fails here leaves its snapshot, which the
# armed trigger (or the next run's settle) tries again.
finish() {
    rc=$?
    set +e
    trap '' HUP PIPE INT TERM
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        failed_temps
        if [ -e "$snap/step.1" ]; then
            echo "palisade: a step failed (exit $rc); putting the previous state back" >&2
        fi
        if (rollback "$id" --locked "$mode-failed"); then
            fetch by "$snap/claim"
            if [ "$by" = "$mode-failed" ]; then
                disarm "$snap"
                rm -rf "$snap"
            fi
        else
            echo "palisade: could not put everything back; the node keeps trying" >&2
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

# boot_rules: at boot, with no controller, decide here what apply has the
# controller decide (render::fix, from the same facts): where the guard's
# jump goes, and what an earlier version left in the filter table; and
# write the family's rules to SNAP/rules.V. Reads prepare's variables.
boot_rules() {
    {
        echo '*mangle'
        echo ":$gchain - [0:0]"
        if [ "$v" = v4 ]; then rules=$rules_v4; else rules=$rules_v6; fi
        printf '%s' "$rules"
        jump_fix "$mangle" PREROUTING "$gchain"
        echo COMMIT
        old_lines "$table"
    } >"$snap/rules.$v"
}

# not_forged: (apply mode; prepare's variables set) fail when a quoted
# string spans lines in the family's tables: it can pose as rules (see
# quoted), and the controller changes no node whose tables hold one, nor
# does this. (At boot, with no controller, the restore goes ahead: it reads
# past them.)
not_forged() {
    [ "$mode" = apply ] || return 0
    rules_of "$table" INPUT
    if [ "$split" = 0 ]; then rules_of "$mangle" PREROUTING; fi
    if [ "$split" = 1 ]; then
        echo "palisade: a rule comment in the $v filter or mangle table holds a newline, whose lines could pose as palisade's rules; it changes nothing here until that rule is gone (iptables-save shows it)" >&2
        exit 3
    fi
}

# prepare V FAM SET TABLE SAVE MANGLE: check what is there, and write the
# family's rules to SNAP/rules.V and what its rollback puts back
# (SNAP/chain.V, SNAP/dchain.V, SNAP/gchain.V, SNAP/jumps.V: see
# undo_family), and the set's lines for the one `ipset restore` to $sets.
prepare() {
    v=$1 fam=$2 set=$3 table=$4 save=$5 mangle=$6
    check_owned "$set" "$table" "$save" "$mangle"
    not_forged
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
    prepare_audit

    if [ "$mode" = apply ]; then
        # Decided by the controller from these very tables (render::fix):
        # the guard, its jump and what an earlier version left, as plan
        # reported them.
        if [ "$v" = v4 ]; then rules=$forward_v4; else rules=$forward_v6; fi
        printf '%s' "$rules" >"$snap/rules.$v"
    else
        boot_rules
    fi
    save_chains
}

# prepare_audit: (prepare's variables set) audit mode's set of the family,
# SET-aud (Policy::audit_set), in the one `ipset restore` too: in audit
# mode, made when missing (destroyed by the undo), made afresh beside it
# (SET-aun, swapped in) when its bound or timeout differ (the undo swaps
# the saved one back), kept as it is, with what it recorded, otherwise. In
# enforce mode, one there (read when the guard records in it) is destroyed
# once no rule uses it: commit_all's step 4, whose undo makes it again as
# saved. Each undo converges, so a second try finishes a first.
prepare_audit() {
    if [ "$v" = v4 ]; then audit=$audit_v4; else audit=$audit_v6; fi
    aset=$set-aud
    if [ -n "$audit" ]; then printf '%s\n' "$audit" >"$snap/audit.$v"; fi
    if [ "$audit_size" = 0 ]; then
        if [ -n "$audit" ]; then
            unaudit="$unaudit $aset"
            undo_unaudit="$undo_unaudit{ ipset list -n '$aset' >/dev/null 2>&1 || ipset restore <'$snap/audit.$v'; } || u=1; "
        fi
        return 0
    fi
    want="hash:ip,port family $fam counters timeout 3600 maxelem $audit_size comment"
    case ${audit%%"$nl"*} in
        "create $aset hash:ip,port family $fam "*" maxelem $audit_size timeout 3600 counters comment "*) ;;
        '')
            sets="${sets}create $aset $want$nl"
            undo_sets="$undo_sets{ ipset destroy '$aset' 2>/dev/null || ! ipset list -n '$aset' >/dev/null 2>&1; } || u=1; "
            ;;
        *)
            sets="${sets}create $set-aun $want${nl}swap $set-aun $aset${nl}destroy $set-aun$nl"
            undo_sets="$undo_sets{ { sed -e 's/^create $aset /create $set-aun /' -e 's/^add $aset /add $set-aun /' '$snap/audit.$v'; echo 'swap $set-aun $aset'; echo 'destroy $set-aun'; } | ipset -exist restore; } || u=1; "
            ;;
    esac
}

# save_chains: (prepare's variables set) what the rollback puts back
# (undo_family): the family's chains as they are now, and where the jumps
# to them are.
save_chains() {
    for c in "chain:$chain" "dchain:$dchain"; do
        if has_chain "$table" "${c#*:}"; then
            rules_of "$table" "${c#*:}"
            printf '%s' "$rules" >"$snap/${c%%:*}.$v"
        fi
    done
    if has_chain "$mangle" "$gchain"; then
        rules_of "$mangle" "$gchain"
        printf '%s' "$rules" >"$snap/gchain.$v"
    fi
    positions "$mangle" PREROUTING "$gchain"
    gjumps=$pos
    positions "$table" INPUT "$chain"
    jumps=$pos
    pos=''
    if has_chain "$table" DOCKER-USER; then positions "$table" DOCKER-USER "$dchain"; fi
    echo "$jumps:$pos:$gjumps" >"$snap/jumps.$v"
}

# prepare_all: both families' prepare, and the nftables backend's table,
# if a move back from it takes one away (prepare_table).
prepare_all() {
    prepare v4 inet "$set4" "$table_v4" "$save_v4" "$mangle_v4"
    prepare v6 inet6 "$set6" "$table_v6" "$save_v6" "$mangle_v6"
    prepare_table
}

# prepare_table: (apply mode) for a move back from the nftables backend:
# where its table may be, read it (one process, on these changes alone:
# the reads, and every other change, never look), check it is palisade's,
# and save it for the rollback (SNAP/table.nft), which tells commit_all to
# take it away. It may be there when the boot file says that backend
# applied last (what plan reports as nft-table-left), or when there is no
# boot file and no set of palisade's: a first change here, or a node moved
# to nftables with --no-persist, which leaves no boot file (and no set:
# the move takes them away), so that two backends never stay side by side.
prepare_table() {
    [ "$mode" = apply ] || return 0
    fetch was "${restore_path%/*}/backend"
    case $was in
        nftables) ;;
        '') [ -z "$save_v4$save_v6" ] || return 0 ;;
        *) return 0 ;;
    esac
    command -v nft >/dev/null 2>&1 || return 0
    ntable_json=$(nft -j list table inet "$ntable" 2>/dev/null) || return 0
    owned_table
    nft -s list table inet "$ntable" >"$snap/table.nft"
}

# commit_all: the commit steps, each with its undo recorded first: one
# `ipset restore` for both sets, one `iptables-restore` per family; when
# the node leaves audit mode, its sets destroyed (step 4); then, on a move
# back from the nftables backend, its table goes, once the guard is in
# (step 5: its undo, undo_nft, puts it back as saved, first of all).
commit_all() {
    printf '%s' "$sets" >"$snap/sets"
    step 1 "u=0; ${undo_sets}[ \"\$u\" = 0 ]"
    ipset -exist restore <"$snap/sets"
    step 2 "undo_family v4 iptables"
    iptables-restore -w 20 --noflush <"$snap/rules.v4"
    step 3 "undo_family v6 ip6tables"
    ip6tables-restore -w 20 --noflush <"$snap/rules.v6"
    # Audit mode's sets, when the node leaves it: no rule uses them now.
    if [ -n "$unaudit" ]; then
        step 4 "u=0; ${undo_unaudit}[ \"\$u\" = 0 ]"
        for a in $unaudit; do ipset destroy "$a"; done
    fi
    [ -f "$snap/table.nft" ] || return 0
    step 5 undo_nft
    nft delete table inet "$ntable"
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
            if [ -e "$snap/rolled-back" ] || { [ ! -e "$snap/armed" ] && [ ! -e "$snap/rollback-failed" ]; }; then
                rm -rf "$snap"
            else
                echo "palisade: an earlier change on this node is not confirmed and rolls back by itself (or its rollback failed and is tried again); try again after that" >&2
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
    sets='' undo_sets='' unaudit='' undo_unaudit=''
    write_rollback
    trap finish EXIT
    trap 'exit 130' INT TERM

    prepare_all
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
                --timer-property=AccuracySec=100ms /bin/sh "$snap/rollback.sh" "$id" --retry
        else
            echo setsid >"$snap/armed"
            # setsid does not fork here (a background job is no group
            # leader): $! is the new process group.
            # shellcheck disable=SC2016 # expanded by the sleeper's own shell
            setsid sh -c 'sleep "$2"; exec sh "$1/rollback.sh" "$3" --retry' palisade-rollback "$snap" "$confirm" "$id" \
                </dev/null >/dev/null 2>&1 9>&- &
            # Its pid and start time: disarm signals it only while both
            # still name it.
            started "$!"
            echo "$! $start" >"$snap/pid"
        fi
    fi

    bump change
    commit_all
    bump changed
    trap - EXIT
    trap '' INT TERM
    if [ "$mode" = boot ] || [ ! -e "$snap/armed" ]; then
        rm -rf "$snap"
    fi
}
