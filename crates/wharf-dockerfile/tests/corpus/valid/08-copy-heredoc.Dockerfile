FROM nginx:alpine
ARG SERVER_NAME=example.com
COPY <<EOF /etc/nginx/conf.d/default.conf
server {
    listen 80;
    server_name ${SERVER_NAME};
}
EOF
COPY <<-"EOT" /usr/share/nginx/html/index.html
	<h1>Hello $USER</h1>
	EOT
