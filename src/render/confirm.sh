# palisade confirm: the controller got through on a new connection; keep the
# change. Races the rollback for the claim: whichever takes it first wins.
snap=/run/palisade/rollback
if [ ! -d "$snap" ]; then
    echo 'state=none'
elif mkdir "$snap/claim" 2>/dev/null; then
    echo confirm >"$snap/claim/by"
    disarm "$snap"
    rm -rf "$snap"
    echo 'state=confirmed'
else
    i=0
    while [ ! -e "$snap/rolled-back" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    echo 'state=rolled-back'
fi
