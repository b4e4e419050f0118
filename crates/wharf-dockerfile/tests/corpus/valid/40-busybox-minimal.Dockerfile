FROM busybox
CMD ["sh"]