# A comment before anything
  # an indented comment

FROM alpine
# comment between instructions
RUN echo one \
# a comment inside a continuation
    two \
    # indented comment inside a continuation
    three
#RUN echo disabled
