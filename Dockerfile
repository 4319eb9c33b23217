# orgmirror: the API, the worker and the migrations in one image (skopeo included).
# Build: docker build -t orgmirror .     Run: see docker-compose.yml and the README.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends skopeo ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/orgmirror orgmirror
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /opt/orgmirror
COPY alembic.ini ./
COPY alembic ./alembic
ENV ORGMIRROR_ALEMBIC_INI=/opt/orgmirror/alembic.ini \
    ORGMIRROR_DATA_DIR=/var/lib/orgmirror \
    PYTHONUNBUFFERED=1
USER orgmirror
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["orgmirror"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
