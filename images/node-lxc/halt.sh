#!/bin/sh
# /sbin/halt and /sbin/shutdown of a prov LXC node (vagrant halt runs `shutdown -h now` over ssh,
# vagrant-lxc runs /sbin/halt before lxc-stop; arguments are ignored). The node's engine (the
# oldest child of tini, PID 1) stops its containers and exits; tini and the node end with it.
# (A signal sent to PID 1 from inside the node would be ignored.)
exec pkill -TERM --parent 1 --oldest
