# mecharena designer environment as an OpenEnv server:
#   docker build -t mecharena . && docker run -p 8000:8000 -e MECHARENA_TOKEN=a-long-secret mecharena
# Off loopback the server refuses to start without a bearer token (clients send Authorization: Bearer TOKEN).
FROM python:3.11-slim

# numba caches compiled kernels under /tmp: the one writable place when the image runs read-only or as
# another user (without it the first kernel fails with "no locator available").
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NUMBA_CACHE_DIR=/tmp/numba
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
COPY openenv.yaml ./
RUN pip install ".[server]"

# Run unprivileged.
RUN useradd --create-home mecharena
USER mecharena

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["mecharena", "serve", "--host", "0.0.0.0", "--port", "8000"]
