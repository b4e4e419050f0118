FROM python:3.11-slim AS build-env
COPY . /app
WORKDIR /app
RUN pip install --no-cache-dir -r requirements.txt --target /app/deps

FROM gcr.io/distroless/python3-debian12
COPY --from=build-env /app /app
WORKDIR /app
ENV PYTHONPATH=/app/deps
CMD ["main.py"]
