/// <reference types="unplugin-imagegen/client" />
