# palisade's shell library, shared by the apply, restore and remove scripts.
# Data (names, members, rules) come before it; it only reads them. The
# filter table is listed once (`iptables -S`) and questions about it are
# answered from that text with shell builtins, not one process each.
# Empty values are written "" here and in nft.sh, not '': the library
# travels as a single-quoted value, where each ' takes four bytes of the
# first flight (render::tests::every_fleets_read_fits_in_one_flight).
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# A newline, for building text with builtins.
nl='
'

# quoted LINE: whether LINE opens or closes a quoted string it does not
# end: one with an odd number of double quotes that no backslash escapes.
# iptables-save quotes a string that holds anything but letters, digits,
# `_` and `-` (a rule comment), escapes `"`, `\` and `'` in it with a
# backslash, and prints a newline in it as it is: the lines after such a
# line, up to the one that closes the string, are the string's, whatever
# they look like (a forged rule, or a forged section of palisade's). Only
# a line with a quote in it gets here; builtins only.
quoted() {
    # Most such lines hold one string that ends there: two quotes, no
    # escape; they cost a pattern match, not a loop.
    case $1 in
        *\\* | *\"*\"*\"*) ;;
        *\"*\"*) return 1 ;;
        *\"*) return 0 ;;
        *) return 1 ;;
    esac
    qrest=$1 q=1
    while :; do
        case $qrest in
            *\\*)
                qtail=${qrest#*\\}
                qrest=${qrest%%\\*}${qtail#?}
                ;;
            *) break ;;
        esac
    done
    while :; do
        case $qrest in
            *\"*) qrest=${qrest#*\"} q=$((1 - q)) ;;
            *) return "$q" ;;
        esac
    done
}

# has_chain TABLE CHAIN: whether TABLE (as iptables-save prints it: one
# `:NAME POLICY [counters]` line per chain) has the chain.
has_chain() {
    case "
$1" in
        *"
:$2 "*) return 0 ;;
    esac
    return 1
}

# rules_of TABLE CHAIN: sets rules to the chain's rules, in order, one a
# line (split as positions does, a quoted string's later lines skipped),
# and split to 1 when TABLE has a quoted string that spans lines (see
# quoted): what only something that forges lines puts there.
rules_of() {
    rules="" inq=0 split=0
    set -f
    ifs=$IFS IFS=$nl
    for line in $1; do
        wasq=$inq
        case $line in *\"*) if quoted "$line"; then inq=$((1 - inq)) split=1; fi ;; esac
        case $wasq in 1) continue ;; esac
        case $line in "-A $2 "*) rules="$rules$line$nl" ;; esac
    done
    IFS=$ifs
    set +f
}

# fetch VAR FILE: sets VAR to FILE's first line, or to nothing when there is
# no such file: `$(cat FILE)` without its two processes.
fetch() {
    if [ -f "$2" ]; then
        IFS= read -r "$1" <"$2" || :
    else
        read -r "$1" </dev/null || :
    fi
}

# read_node: the filter and mangle tables and palisade's two sets, each
# into a variable, in four processes: table_v4/table_v6 and
# mangle_v4/mangle_v6 as `iptables-save -t filter` and `-t mangle` print
# them (the rules as `iptables -S` prints them, and a first line naming the
# version and the backend; see read_tables), save_v4/save_v6 as `ipset
# save` does (empty when there is no such set).
read_node() {
    read_ipt
}

# read_ipt: what read_node reads with the iptables backend; the nftables
# backend reads it too when palisade's sets are there (see nft.sh).
read_ipt() {
    read_tables
    # One ipset for each set. (Its restore mode can save both in one
    # process, but the shell would then have to cut the two apart, and
    # taking the head off a long string costs dash time quadratic in its
    # length: seconds on a node of a few hundred members' sets.)
    save_v4=$(ipset save "$set4" 2>/dev/null) || save_v4=""
    save_v6=$(ipset save "$set6" 2>/dev/null) || save_v6=""
    read_audit
}

# read_audit: audit mode's sets (SET-aud) into audit_v4/audit_v6, each read
# only when the family's guard records in it: in enforce mode, a pattern
# match and no process.
read_audit() {
    for v in 4 6; do
        eval "am=\$mangle_v$v as=\$set$v-aud audit_v$v="
        case $am in *" --add-set $as "*) eval "audit_v$v=\$(ipset save $as 2>/dev/null)" || : ;; esac
    done
}

# read_tables: the filter and mangle tables of both families (see
# read_node): table_V the filter table, mangle_V the mangle table (where the
# guard before DNAT is), from one iptables-save of every table per family.
read_tables() {
    save_all iptables || :
    table_v4=$tfilter mangle_v4=$tmangle
    save_all ip6tables || :
    table_v6=$tfilter mangle_v6=$tmangle
}

# save_all IPT: sets tfilter and tmangle to those tables as `IPT-save
# -t` prints each, from one `IPT-save` of every table (one process, where
# two `-t` would take two), cut apart in one pass with builtins: every line
# from a table's `*NAME` to the next table's goes to that table's text.
# Parameter expansions that cut a long text at a pattern cost dash time
# quadratic in its length; so is a loop that appends a line at a time to
# the long text, which dash copies at each append: this one appends to
# short texts (cf, cm) that go on the long ones a hundred lines at a time,
# a hundredth of that copying. Only the filter
# and mangle tables are kept, so the nat table's thousands of kube-proxy
# rules cost one pass, not a copy. tfilter starts with the save's first
# line (backend_of reads the version and the backend there). A quoted
# string's later lines (see quoted) are the string's, whatever they look
# like. Fails, both empty, when the save does.
save_all() {
    tfilter="" tmangle="" tab=filter inq=0 cf="" cm="" ck=0
    saved=$("$1-save" 2>/dev/null) || return 1
    set -f
    ifs=$IFS IFS=$nl
    for line in $saved; do
        wasq=$inq
        case $line in *\"*) if quoted "$line"; then inq=$((1 - inq)); fi ;; esac
        case $wasq$line in 0\**) tab=${line#?} ;; esac
        case $tab in
            filter) cf="$cf$line$nl" ck=$((ck + 1)) ;;
            mangle) cm="$cm$line$nl" ck=$((ck + 1)) ;;
        esac
        case $ck in *00) tfilter=$tfilter$cf tmangle=$tmangle$cm cf="" cm="" ck=0 ;; esac
    done
    tfilter=$tfilter$cf tmangle=$tmangle$cm
    IFS=$ifs
    set +f
}

# The backend's hooks (nft.sh, loaded after this library for the nftables
# backend, replaces them): `tools`, what the backend needs on a node;
# say_state, its objects as observe says them (and `backend`, which stage
# records); read_back and say_back, what a change left, read again and said.
tools='ipset iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore'
say_state() {
    section backend
    backend_of "$table_v4"
    if [ -n "$backend" ]; then say "$backend"; fi
    say_ipt
}
# say_ipt: both families' sets and chains, as read_ipt read them.
say_ipt() {
    for v in v4 v6; do
        if [ "$v" = v4 ]; then table=$table_v4 mangle=$mangle_v4 save=$save_v4; else table=$table_v6 mangle=$mangle_v6 save=$save_v6; fi
        section "set-$v"
        if [ -n "$save" ]; then say "$save"; fi
        say_chains "$v" "$table" "$mangle"
    done
}
read_back() {
    read_tables
    read_audit
}
say_back() {
    say_chains v4 "$table_v4" "$mangle_v4"
    say_chains v6 "$table_v6" "$mangle_v6"
}

# say TEXT: adds TEXT to the reply, which the script prints in one write
# once it is whole (reply_out): sshd runs a command without a terminal with
# Nagle's algorithm on, so a short packet it sends while an earlier short
# one is unacknowledged waits for that acknowledgement, a round trip; a
# reply printed a line at a time would arrive that much later.
# TEXT is data: each of its lines (empty ones dropped, but for an empty
# TEXT) goes out behind a `|`, and only `section` starts a line otherwise,
# so nothing read from the node (a rule's or a set member's comment can
# hold newlines) can pose as a section, or end a reply (`==> end`). Split
# as positions does, builtins only.
# Dash copies a variable whole at each append, so what is appended to a
# long text costs the length of that text: the reply is a short text,
# `reply`, that goes into a numbered piece of its own once it passes a
# kilobyte (seal), and reply_out joins the pieces once. A long TEXT (10,000
# bytes or more: a set of some hundreds of members) is framed by printf,
# which repeats its format for each line, in one subshell: a fork, where a
# loop that frames a line at a time costs a node milliseconds (framing two
# sets of two thousand members so took 13 ms of sh); a short one by that
# loop, sealed every ten lines as it grows.
say() {
    case $1 in
        *"$nl"*)
            set -f
            ifs=$IFS IFS=$nl
            # shellcheck disable=SC2086 # split on purpose: a line a field
            case ${#1} in
                ?????*) set -- $1; [ $# = 0 ] || reply="$reply$(printf "|%s\n" "$@")$nl" ;;
                *)
                    sk=0
                    for line in $1; do
                        reply="$reply|$line$nl" sk=$((sk + 1))
                        case $sk in *0) seal ;; esac
                    done
                    ;;
            esac
            IFS=$ifs
            set +f
            ;;
        *) reply="$reply|$1$nl" ;;
    esac
    seal
}

# seal: once past a kilobyte, `reply` becomes the next numbered piece of
# the reply (see say).
seal() {
    case ${#reply} in ????*)
        np=$((np + 1))
        eval "r$np=\$reply"
        parts="$parts\$r$np" reply="" ;;
    esac
}

# reply_out: prints the reply, its pieces and `reply` after them, in one
# write (see say), and starts the next reply.
reply_out() {
    eval "printf %s \"$parts\$reply\""
    reply="" parts="" np=0
}
reply="" parts="" np=0

# section NAME: adds the header `==> NAME` to `reply`: the data said after
# it, up to the next header, is the section's.
section() {
    reply="$reply==> $1$nl"
}

# say_chains V TABLE MANGLE: first audit-V, audit mode's set as read_audit
# read it, when there is one; then the sections chain-V, input-V, docker-user-V
# and docker-chain-V, each with its chain (`-N NAME`, then its rules) when
# the filter TABLE has it, and prerouting-V and guard-V when the MANGLE
# table has it, said (see `say`): what observe prints, and what a change
# prints of the chains it left; then forged-V, which says `table` when a
# quoted string in either table spans lines (see rules_of): its lines could
# pose as rules of these chains, so the controller trusts none of it.
say_chains() {
    eval "a=\$audit_$1"
    if [ -n "$a" ]; then
        section "audit-$1"
        say "$a"
    fi
    forged=0 t=$2
    for c in "chain:$chain" input:INPUT docker-user:DOCKER-USER "docker-chain:$dchain" prerouting:PREROUTING "guard:$gchain"; do
        section "${c%%:*}-$1"
        # The last two, prerouting and guard, are the mangle table's.
        case $c in [pg]*) t=$3 ;; esac
        if has_chain "$t" "${c#*:}"; then
            say "-N ${c#*:}"
            rules_of "$t" "${c#*:}"
            forged=$((forged | split))
            if [ -n "$rules" ]; then say "$rules"; fi
        fi
    done
    section "forged-$1"
    if [ "$forged" = 1 ]; then say table; fi
}

# backend_of TABLE: sets backend to what `iptables -V` prints. The first
# line iptables-save writes names the backend on current releases
# ("v1.8.9 (nf_tables)"); where it does not (the legacy backend, and some
# older nf_tables releases), `iptables -V` says, at the cost of a process.
backend_of() {
    backend=""
    case ${1%%"$nl"*} in
        "# Generated by iptables-save v"*" (nf_tables) "*)
            backend=${1%%"$nl"*}
            backend=${backend#"# Generated by iptables-save "}
            backend="iptables ${backend%% on *}"
            ;;
        *) backend=$(iptables -V 2>/dev/null) || backend="" ;;
    esac
}

# bump: say that this node's netfilter or boot files change: every writer
# bumps under the lock before its first write and after its last, and a
# change compares the word read before its (unlocked) observe with the one
# under the lock, so that it never starts from tables another run was
# changing or changed after they were read. Never fails a caller.
bump() {
    uptime
    { echo "$$-$now-${1-}" >/run/palisade/generation; } 2>/dev/null || :
}

# uptime: sets now to the seconds since boot, from /proc/uptime, with no
# process: deadlines count on this clock, which neither NTP nor an operator
# moves, and which starts again (with an empty /run) at every boot.
uptime() {
    read -r now rest </proc/uptime
    now=${now%%.*}
}

# The node lock, /run/palisade/lock, has one owner at a time: an apply or a
# remove (which fail at once when it is taken), a confirmation or a rollback
# (which wait for it). A change's fate is then decided by one claim (the
# file SNAP/claim, made with O_EXCL, holding its owner's name): the
# rollback, the confirmation, a failed apply and remove race for it, and
# only the winner acts on the snapshot, disarms its trigger or deletes it.
# So nothing kills a rollback that has started, or deletes its snapshot
# under it.
# lock_node [SECONDS]: take the lock on fd 9, or fail; with SECONDS, wait
# that long for it. /run/palisade is root's alone (0700): a user who could
# open the lock could flock it through a read-only descriptor and so fail
# every apply and hold up every rollback. One that is not root's own
# directory (a user made it, or a link, before palisade ever ran) is
# refused: what a user put in it could send palisade's writes elsewhere.
lock_node() {
    if ! command -v flock >/dev/null 2>&1; then
        echo "palisade: flock is missing on this node (it comes with util-linux); palisade needs it to make one change at a time" >&2
        exit 3
    fi
    umask 077
    [ -e /run/palisade ] || [ -L /run/palisade ] || mkdir -m 0700 /run/palisade
    if [ -L /run/palisade ] || [ ! -d /run/palisade ] || [ ! -O /run/palisade ]; then
        echo "palisade: /run/palisade is not a directory of root's own; remove it (another user made it) and try again" >&2
        exit 3
    fi
    # Made 0755 by an older palisade: closed once (the mark says so, and
    # only root can write in a directory of root's own), not a process on
    # every change.
    if [ ! -e /run/palisade/private ]; then
        chmod 0700 /run/palisade && : >/run/palisade/private
    fi
    exec 9>/run/palisade/lock
    if [ -n "${1-}" ]; then
        flock -w "$1" 9 && return 0
    elif flock -n 9; then
        return 0
    fi
    echo "palisade: another palisade run is changing this node right now; try again" >&2
    exit 4
}

# claim SNAP OWNER: take SNAP's claim for OWNER; fails when another took it
# first. `set -C` makes the redirection create the file exclusively, so of
# two racing claimants exactly one gets it, with no process.
claim() {
    set -C
    if { echo "$2" >"$1/claim"; } 2>/dev/null; then
        set +C
        return 0
    fi
    set +C
    return 1
}

# disarm SNAP: (claim won) stop SNAP's trigger: the systemd timer of its
# own name, or the detached sleeper's process group, only while that
# group's leader is still the sleeper (its start time, field 22 of
# /proc/PID/stat, as recorded when it started): a number the kernel gave to
# another process since is never signalled. A rollback already running
# (retrying between tries) finds the claim taken, or the snapshot gone, at
# its next try, and stops.
disarm() {
    fetch armed "$1/armed"
    # shellcheck disable=SC2086 # the words of `armed`, on purpose
    set -- "$1" $armed
    case ${2-} in
        systemd) systemctl stop "${3-palisade-rollback}.timer" >/dev/null 2>&1 || true ;;
        setsid)
            fetch sleeper "$1/pid"
            started "${sleeper%% *}"
            if [ -n "$start" ] && [ "$start" = "${sleeper#* }" ] && [ "$group" = "${sleeper%% *}" ]; then
                kill -TERM "-${sleeper%% *}" 2>/dev/null || true
            fi
            ;;
    esac
}

# started PID: sets start to the start time of process PID (field 22 of
# /proc/PID/stat, in clock ticks since boot) and group to its process group
# (field 5), or both to nothing when there is no such process. Builtins
# only. The command name (field 2) may hold blanks and parentheses: the
# fields are counted after its last `) `.
started() {
    start="" group=""
    case $1 in '' | *[!0-9]*) return 0 ;; esac
    [ -r "/proc/$1/stat" ] || return 0
    IFS= read -r stat <"/proc/$1/stat" || return 0
    set -f
    # shellcheck disable=SC2086 # the fields of /proc/PID/stat, on purpose
    set -- ${stat##*) }
    set +f
    # $1 is field 3 (state), $3 field 5, $20 field 22.
    if [ "$#" -ge 20 ]; then
        group=$3
        shift 19
        start=$1
    fi
}

# settle: (lock held) finish what the owner of a claim left undone when it
# died (a confirmation killed before it removed the snapshot, a rollback
# killed half way), and run a rollback whose trigger has not fired 30 s
# after its deadline (killed, or its /run lost). Sets settled to what it
# did: confirm, rollback, expired, or nothing.
settle() {
    settled=""
    s=/run/palisade/rollback
    if [ ! -d "$s" ] || [ -e "$s/rolled-back" ] || [ ! -f "$s/id" ]; then return 0; fi
    fetch sid "$s/id"
    if [ -e "$s/rollback-failed" ] && [ ! -e "$s/claim" ]; then
        # A rollback that could not even start (the lock held past its
        # wait): try it now, under this lock.
        sh "$s/rollback.sh" "$sid" --locked settle || true
        settled=rollback
    elif [ -e "$s/claim" ]; then
        fetch by "$s/claim"
        case $by in
            confirm) bump; install_boot "$s" || true; rm -rf "$s"; settled=confirm ;;
            *) sh "$s/rollback.sh" "$sid" --locked settle || true; settled=rollback ;;
        esac
        bump
    elif [ -e "$s/armed" ] && [ -f "$s/deadline-uptime" ] && fetch due "$s/deadline-uptime" && uptime &&
        [ "$now" -gt "$((${due:-0} + 30))" ]; then
        sh "$s/rollback.sh" "$sid" --locked expired || true
        settled=expired
    fi
}

# The boot files a change wants are written beside the live ones (NAME.new)
# when it is made, where nothing reads them at boot, and put in place by
# renames once it is confirmed (install_boot): a node that crashes while a
# change is unconfirmed boots into its old state. SNAP/boot-plan says what
# the confirmation does: install, or remove (persistence off).

# install_boot SNAP: (lock held, change confirmed) make the boot files what
# the confirmed change staged. Each step is on disk before the next starts,
# so a power cut at any point boots the old state or the new one: the new
# files flushed (and the directories stage may have made, in their
# parents); the script and the backend put in place by renames, their
# directory flushed; then the unit, its directory flushed; then its link,
# that directory flushed. The link comes last: until it is on disk the
# boot runs no unit, or the unit it ran before (whose text is the same),
# and the script it reads is whole, old or new. The unit is enabled as
# `systemctl enable` would, by its [Install] link ($unit_wants), without a
# daemon-reload: it only has to be there at the next boot, which reads the
# unit files afresh. Fails (status 1) at the first step that fails.
install_boot() {
    fetch plan "$1/boot-plan"
    dir=${restore_path%/*}
    case $plan in
        install)
            [ -f "$dir/restore.sh.new" ] || return 1
            new="$dir/restore.sh.new"
            if [ -f "$dir/backend.new" ]; then new="$new $dir/backend.new"; fi
            if [ -f "$unit_path.new" ]; then new="$new $unit_path.new"; fi
            # sync FILE flushes that file alone (fsync), not its whole file
            # system: on a busy node that is milliseconds, not seconds.
            # shellcheck disable=SC2086 # one or two file names, no blanks
            sync $new "$dir" "${dir%/*}" || return 1
            mv -f "$dir/restore.sh.new" "$dir/restore.sh" || return 1
            if [ -f "$dir/backend.new" ]; then
                mv -f "$dir/backend.new" "$dir/backend" || return 1
            fi
            sync "$dir" || return 1
            if [ -f "$unit_path.new" ]; then
                mv -f "$unit_path.new" "$unit_path" || return 1
                # Also the entry of the .wants directory, if stage made it.
                sync "${unit_path%/*}" || return 1
                if [ ! -L "$unit_wants" ]; then
                    ln -s "$unit_path" "$unit_wants" || return 1
                    sync "${unit_wants%/*}" || return 1
                fi
            fi
            ;;
        remove)
            remove_boot || return 1
            ;;
        *)
            echo "palisade: the pending change does not say what to do with the boot files" >&2
            return 1
            ;;
    esac
}

# remove_boot: take the boot restore away, the link first, then the unit,
# then the files it runs, each directory flushed before the next step, so
# that after a power cut at any point the boot restores all of it or none.
remove_boot() {
    dir=${restore_path%/*}
    units=""
    if [ -L "$unit_wants" ]; then
        rm -f "$unit_wants" || return 1
        sync "${unit_wants%/*}" || return 1
        units=1
    fi
    if [ -f "$unit_path" ] || [ -f "$unit_path.new" ]; then
        rm -f "$unit_path" "$unit_path.new" || return 1
        sync "${unit_path%/*}" || return 1
        units=1
    fi
    if [ -n "$units" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || return 1; fi
    rm -f "$restore_path" "$dir/backend" "$dir/docker-user" "$dir/restore.sh.new" "$dir/backend.new" || return 1
    if [ -d "$dir" ]; then sync "$dir"; fi
}
