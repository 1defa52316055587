# palisade confirm: the controller got through on a new connection; keep the
# change. Takes the node lock, then races the rollback for the claim:
# whichever takes it first wins. The winner installs the boot files the
# change staged, so only a confirmed change outlives a reboot.
lock_node 60
snap=/run/palisade/rollback
if [ ! -d "$snap" ]; then
    echo 'state=none'
elif mkdir "$snap/claim" 2>/dev/null; then
    echo confirm >"$snap/claim/by"
    disarm "$snap"
    install_boot "$snap"
    rm -rf "$snap"
    echo 'state=confirmed'
else
    echo 'state=rolled-back'
fi
exec 9>&-
