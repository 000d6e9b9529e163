# redpipe in a container: the built .pyz on the official slim Python image, run by a
# non-root user, the database on a volume.
#
#   ./build.sh && docker build -t redpipe .
#   docker run -d --name redpipe -v redpipe-data:/data \
#       -e REDPIPE_CLIENT_ID=... -e REDPIPE_CLIENT_SECRET=... redpipe
#   docker run --rm -v redpipe-data:/data redpipe --help      # any redpipe arguments
#
# `docker stop` sends SIGTERM: redpipe commits what it fetched and exits 0.
FROM python:3.13-slim-bookworm

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin redpipe \
    && mkdir /data && chown redpipe:redpipe /data
COPY redpipe.pyz /usr/local/bin/redpipe
USER 10001:10001
# The first start of a build compiles it into the user's cache; do that here, once, and
# fail the build if the file does not run on this image.
RUN python3 /usr/local/bin/redpipe --version
VOLUME /data
WORKDIR /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["python3", "/usr/local/bin/redpipe"]
CMD ["/data/posts.sqlite"]
