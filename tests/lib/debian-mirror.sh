# host_mirror: the Debian archive this machine's apt already uses, the first
# "deb" source that is neither a security nor an updates suite (sourced by
# .ci/run for its fresh roots and by tests/lib/image.bash for base images).
host_mirror() {
	{
		awk '/^URIs:/ { u = $2 } /^Suites:/ { if ($2 !~ /-(security|updates)$/ && u ~ /debian/) print u }' \
			/etc/apt/sources.list.d/*.sources 2>/dev/null
		awk '$1 == "deb" && $3 !~ /-(security|updates)$/ && $2 ~ /debian/ { print $2 }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
	} | head -n 1
}
