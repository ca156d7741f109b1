# doxygen-filter.awk - the INPUT_FILTER of docs/Doxyfile.in.
#
# The public headers document every declaration with plain C comments
# (/* ... */) above it, or after it on the same line for struct fields and
# enum values. Doxygen reads only /** */ comments, so this filter shows it
# the headers with those comments marked, leaving the files untouched:
#   - the first comment of a file becomes the file's documentation (@file);
#   - a comment that starts a line documents the declaration below it (/**);
#   - a comment after code on the same line documents that code (/**<);
#   - comments inside macro bodies (lines ending in a backslash) and after
#     #endif/#else/#elif stay plain.
# Inside comments, characters Doxygen would read as markup (\ @ < > & # %
# and $) are escaped, so the text appears as written.
# Line count is preserved, so Doxygen's line numbers stay right.

function escape(text,    out, i, c) {
  out = ""
  for (i = 1; i <= length(text); i++) {
    c = substr(text, i, 1)
    if (index("\\@<>&#%$", c) > 0)
      out = out "\\" c
    else
      out = out c
  }
  return out
}

BEGIN { in_comment = 0; seen_first = 0 }

{
  line = $0
  if (in_comment) {
    end = index(line, "*/")
    if (end == 0) {
      print escape(line)
      next
    }
    in_comment = 0
    out = escape(substr(line, 1, end - 1)) "*/"
    line = substr(line, end + 2)
    # (a second comment on the closing line is not used in the headers)
    print out line
    next
  }
  start = index(line, "/*")
  if (start == 0 || line ~ /\\$/ || line ~ /^[ \t]*#[ \t]*(endif|else|elif)/) {
    print line
    next
  }
  code = substr(line, 1, start - 1)
  rest = substr(line, start + 2)
  if (substr(rest, 1, 1) == "*" || substr(rest, 1, 1) == "!") {
    print line # already a Doxygen comment
    next
  }
  if (!seen_first && code ~ /^[ \t]*$/) {
    marker = "/** @file "
  } else if (code ~ /^[ \t]*$/) {
    marker = "/** "
  } else {
    marker = "/**< "
  }
  seen_first = 1
  end = index(rest, "*/")
  if (end == 0) {
    in_comment = 1
    print code marker escape(rest)
  } else {
    print code marker escape(substr(rest, 1, end - 1)) "*/" substr(rest, end + 2)
  }
}
