{
    'master':{'PORT': 6379, 'BIND': '127.0.0.1'},
    'dev1':{'PORT': 6381},
    'dev2':{'PORT': 6381},
}
