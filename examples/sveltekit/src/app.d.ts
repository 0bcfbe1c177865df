/// <reference types="unplugin-imagegen/client" />
declare const __PRERENDER__: boolean
export {}
