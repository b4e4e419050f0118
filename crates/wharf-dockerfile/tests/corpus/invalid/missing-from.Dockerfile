# comment
RUN echo hi
