# palisade rollback status: what became of the last change on this node.
snap=/run/palisade/rollback
if [ ! -d "$snap" ]; then
    echo '|state=none'
elif [ -e "$snap/rolled-back" ]; then
    echo '|state=rolled-back'
elif [ -e "$snap/rollback-failed" ]; then
    echo '|state=rollback-failed'
elif [ -e "$snap/claim" ]; then
    IFS= read -r by <"$snap/claim" || by=''
    if [ "$by" = confirm ]; then echo '|state=confirming'; else echo '|state=rolling-back'; fi
else
    echo "|state=armed"
fi
