#!/usr/bin/env bash
# Apache JMeter 5.x from Maven Central (no binary download) into a JMeter home:
#   bin/ApacheJMeter.jar + bin/*.properties (from ApacheJMeter_config), lib/ (dependencies),
#   lib/ext/ (JMeter's own modules), bin/jmeter (a launcher).
# Usage: tools/jmeter/install.sh HOME   (make jmeter: HOME = ~/.cache/sluice/jmeter-5.6.3)
set -euo pipefail
home=${1:?usage: install.sh JMETER_HOME}
here=$(cd "$(dirname "$0")" && pwd)
command -v mvn >/dev/null && command -v java >/dev/null || { echo "install.sh: needs maven and a JDK (apt-get install maven default-jdk-headless)" >&2; exit 1; }
tmp=$(mktemp -d "${home%/*}/.jmeter.XXXXXX" 2>/dev/null || { mkdir -p "${home%/*}"; mktemp -d "${home%/*}/.jmeter.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/jars"
mkdir -p "$tmp/home/bin" "$tmp/home/lib/ext"
python3 - "$tmp/jars" "$tmp/home" <<'PY'
import sys, zipfile
from pathlib import Path
jars, home = Path(sys.argv[1]), Path(sys.argv[2])
for jar in jars.glob("*.jar"):
    if jar.name.startswith("ApacheJMeter_config-"):
        with zipfile.ZipFile(jar) as z:
            for name in z.namelist():
                if name.startswith("bin/") and not name.endswith("/"):
                    target = home / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(name))
    elif jar.name.startswith("ApacheJMeter-"):
        jar.rename(home / "bin" / "ApacheJMeter.jar")
    elif jar.name.startswith("ApacheJMeter_"):
        jar.rename(home / "lib" / "ext" / jar.name)
    else:
        jar.rename(home / "lib" / jar.name)
PY
cat > "$tmp/home/bin/jmeter" <<'SH'
#!/bin/sh
# Apache JMeter, installed from Maven Central by tools/jmeter/install.sh
exec java ${JVM_ARGS:-} -jar "$(dirname "$0")/ApacheJMeter.jar" "$@"
SH
chmod +x "$tmp/home/bin/jmeter"
rm -rf "$home" && mv "$tmp/home" "$home"
(cd "$tmp" && "$home/bin/jmeter" --version >/dev/null 2>&1) || { echo "install.sh: $home/bin/jmeter --version failed" >&2; exit 1; }
echo "Apache JMeter installed in $home (run $home/bin/jmeter)"
