# observe [SSH_CONNECTION]: says (see `say`) the node's state in sections,
# ending with `==> end`, every data line framed (observe::firewall's
# Sections parses them), from the tables and sets `read_node` left in
# table_v4, table_v6, save_v4 and save_v6 (where a change then starts
# from): one `sha256sum` when there are boot files. Callers run it through
# `say_observed`, defined beside it. Part of every read and of the converge
# script's first flight (render::tests::every_fleets_read_fits_in_one_flight).
observe() {
# $1 is SSH_CONNECTION when the step runs as Privilege::RootSeeingOrigin.
section origin
say "${1-}"
# With --backend auto, the section `choose` made.
reply=$reply${choice-}
section missing-tools
for tool in $tools flock head; do
    command -v "$tool" >/dev/null 2>&1 || say "$tool"
done
say_state
# While a change waits for its confirmation, the boot files are the ones it
# staged (the confirmation installs them): what the node will have once
# confirmed. Verify reports the pending change itself as unconfirmed.
snap=/run/palisade/rollback
pending=no
if [ -d "$snap" ] && [ ! -e "$snap/rolled-back" ] && [ -e "$snap/armed" ] && [ -f "$snap/boot-plan" ]; then
    fetch pending "$snap/boot-plan"
fi
dir=${restore_path%/*}
restore=$restore_path backend_file=$dir/backend unit=$unit_path
case $pending in
    install)
        restore=$dir/restore.sh.new backend_file=$dir/backend.new
        if [ -f "$unit_path.new" ]; then unit=$unit_path.new; fi
        ;;
    remove) restore=/nonexistent backend_file=/nonexistent unit=/nonexistent ;;
esac
# Both digests from one sha256sum, each alone on a line.
restore_sum='' unit_sum=''
files=''
for f in "$restore" "$unit"; do
    if [ -f "$f" ]; then files="$files $f"; fi
done
if [ -n "$files" ]; then
    # shellcheck disable=SC2086 # split on purpose: the boot files' fixed paths
    sums=$(sha256sum $files 2>/dev/null) || sums=''
    while read -r sum name; do
        if [ "$name" = "$restore" ]; then restore_sum=$sum; fi
        if [ "$name" = "$unit" ]; then unit_sum=$sum; fi
    done <<PALISADE_SUMS
$sums
PALISADE_SUMS
fi
section restore
if [ -n "$restore_sum" ]; then say "$restore_sum"; fi
section backend-file
if [ -f "$backend_file" ]; then fetch applied "$backend_file" && say "$applied"; fi
section systemd
if [ -d /run/systemd/system ]; then say yes; else say no; fi
section unit
if [ -n "$unit_sum" ]; then say "$unit_sum"; fi
# Enabled, as `systemctl is-enabled` says it: the [Install] link to the unit
# is there (the confirmation makes it by hand, as install_boot says).
section unit-enabled
if [ "$pending" != no ]; then
    if [ -f "$unit" ]; then say enabled; fi
elif [ -d /run/systemd/system ] && [ -L "$unit_wants" ] && [ -f "$unit_wants" ]; then
    say enabled
fi
# The interfaces the node's default routes leave by: its uplinks, where
# everyone's traffic comes in; and the main routing table (at most 512
# routes a family), from which the controller learns the interface the
# operator's connection comes in on (the route back to it). Read from /proc
# with builtins, no process.
section uplinks
routes='' n4=0 n6=0
while read -r ifc dst gw flags ref use metric mask rest; do
    if [ "$dst" = 00000000 ]; then say "$ifc"; fi
    case $flags in
        '' | *[!0-9A-Fa-f]*) ;;
        *) n4=$((n4 + 1)); if [ "$n4" -le 512 ]; then routes="${routes}4 $ifc $dst $mask$nl"; fi ;;
    esac
done </proc/net/route 2>/dev/null
while read -r dst len rest; do
    if [ "$dst" = 00000000000000000000000000000000 ] && [ "$len" = 00 ]; then say "${rest##* }"; fi
    case ${rest##* } in
        lo) ;;
        *) n6=$((n6 + 1)); if [ "$n6" -le 512 ]; then routes="${routes}6 ${rest##* } $dst $len$nl"; fi ;;
    esac
done </proc/net/ipv6_route 2>/dev/null
# A table cut short could match a wider route than the real one: said so,
# the controller uses none of that family's.
if [ "$n4" -gt 512 ]; then routes="${routes}4 truncated$nl"; fi
if [ "$n6" -gt 512 ]; then routes="${routes}6 truncated$nl"; fi
section routes
if [ -n "$routes" ]; then say "$routes"; fi
# An earlier change waiting for its confirmation, and how many seconds it
# has left before it rolls back by itself.
section rollback
if [ -d "$snap" ] && [ ! -e "$snap/rolled-back" ] && [ -e "$snap/armed" ]; then
    fetch due "$snap/deadline-uptime"
    fetch sid "$snap/id"
    uptime
    left=$((${due:-0} - now))
    if [ "$left" -lt 0 ]; then left=0; fi
    say "armed $left $sid"
fi
# A rollback that failed, and is being tried again: the node may still have
# that change's rules.
section rollback-failed
if [ -d "$snap" ] && [ -e "$snap/rollback-failed" ] && [ ! -e "$snap/rolled-back" ]; then say yes; fi
section end
}
# say_observed [SSH_CONNECTION]: read the node, then print what observe
# makes of it in one write (see `say`). The first words then come only once
# the node is read: a failure with nothing on stdout is still sudo's
# refusal (see probe::as_root), as nothing in between can fail.
say_observed() {
read_node
reply=''
observe "${1-}"
reply_out
}
