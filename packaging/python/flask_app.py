"""The WSGI app packaging/test_python.sh serves with `python -m corral` from the installed
wheel: a Flask app with a plain route and one that reads the request body."""

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from flask on corral\n"


@app.post("/echo")
def echo():
    return f"flask echo {request.get_json()['n']} of {request.content_length} bytes\n"
