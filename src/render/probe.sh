printf 'ssh_connection=%s\n' "${1-}"
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for tool in ipset iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore nft flock head; do
    if command -v "$tool" >/dev/null 2>&1; then printf 'tool:%s=yes\n' "$tool"; else printf 'tool:%s=no\n' "$tool"; fi
done
printf 'ipset_version=%s\n' "$(ipset --version 2>/dev/null | head -n 1)"
printf 'iptables_version=%s\n' "$(iptables -V 2>/dev/null | head -n 1)"
if [ -d /run/systemd/system ]; then echo 'systemd=yes'; else echo 'systemd=no'; fi
