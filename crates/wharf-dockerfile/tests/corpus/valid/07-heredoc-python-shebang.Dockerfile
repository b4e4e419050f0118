FROM python:3.12-alpine
RUN <<EOT
#!/usr/bin/env python3
import sys
print("hello from", sys.version)
EOT
