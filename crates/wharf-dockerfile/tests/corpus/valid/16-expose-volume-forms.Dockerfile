FROM postgres:16
EXPOSE 5432 5433/tcp 53/udp 7000-7002
VOLUME /var/lib/postgresql/data
VOLUME ["/var/log", "/var/run/postgresql"]
VOLUME /a /b
STOPSIGNAL SIGINT
