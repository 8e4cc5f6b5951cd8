#!/usr/bin/env bash
# technique: T1543.002 Create or Modify System Process: Systemd Service
# technique: T1053.006 Scheduled Task/Job: Systemd Timers
# rules: vigil_systemd_unit_written
# Acts out: a service and a timer unit written into /etc/systemd/system. Neither is
# enabled nor loaded (no daemon-reload); both are removed at once.
source lib/common.sh
unit=/etc/systemd/system/$TAG
undo "rm -f '$unit.service' '$unit.timer'"
printf '[Unit]\nDescription=Vigil rule pack test\n[Service]\nExecStart=/bin/true\n' > "$unit.service"
printf '[Unit]\nDescription=Vigil rule pack test\n[Timer]\nOnBootSec=10y\n' > "$unit.timer"
